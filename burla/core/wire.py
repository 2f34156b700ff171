"""Frames: a JSON header and opaque bytes, the one format burla's processes exchange.

A frame is `<header length: 4 bytes><payload length: 4 bytes><JSON header><payload>`,
lengths big-endian. Payloads (pickled functions, inputs, results) pass through the
services untouched: only workers unpickle them.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

from burla.core.errors import InvalidRequestError

_LENGTHS = struct.Struct(">II")
PREFIX_SIZE = _LENGTHS.size
MAX_HEADER = 16 * 1024 * 1024
TRACEBACK_STREAM = "traceback"
"""A worker's log line on this stream is the text of the traceback an input raised: read
by people (the dashboard, `burla jobs show`), never printed by the client."""


def encode(header: dict[str, Any] | list[Any], payload: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return _LENGTHS.pack(len(head), len(payload)) + head + payload


def encode_many(frames: list[tuple[Any, bytes]]) -> bytes:
    return b"".join(encode(header, payload) for header, payload in frames)


def lengths(prefix: bytes) -> tuple[int, int]:
    """Header and payload lengths from a frame's first PREFIX_SIZE bytes."""
    head, body = _LENGTHS.unpack(prefix)
    if head > MAX_HEADER:
        raise InvalidRequestError(f"a frame header of {head} bytes is too large; is this burla?")
    return head, body


def decode_header(raw: bytes) -> Any:
    """A header: a JSON object, or a JSON array for compact events."""
    try:
        header = json.loads(raw)
    except ValueError as error:
        raise InvalidRequestError(f"a frame header is not JSON: {error}") from None
    if not isinstance(header, dict | list):
        raise InvalidRequestError("a frame header must be a JSON object or array")
    return header


def decode_all(data: bytes | memoryview) -> Iterator[tuple[Any, bytes]]:
    """Every frame in `data`, which must hold whole frames only."""
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        if len(view) - offset < PREFIX_SIZE:
            raise InvalidRequestError("the body ends inside a frame prefix")
        head, body = lengths(bytes(view[offset : offset + PREFIX_SIZE]))
        start = offset + PREFIX_SIZE
        end = start + head + body
        if end > len(view):
            raise InvalidRequestError("the body ends inside a frame")
        yield decode_header(bytes(view[start : start + head])), bytes(view[start + head : end])
        offset = end
