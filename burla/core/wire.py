"""Frames: a JSON header and opaque bytes, the one format burla's processes exchange.

A frame is `<header length: 4 bytes><payload length: 4 bytes><JSON header><payload>`,
lengths big-endian. Payloads (pickled functions, inputs, results) pass through the
services untouched: only workers unpickle them.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields
from operator import itemgetter
from typing import Any, ClassVar, TypeVar

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


def encode_many(frames: Iterable[tuple[Any, bytes]]) -> bytes:
    return b"".join(encode(header, payload) for header, payload in frames)


def lengths(prefix: bytes | memoryview) -> tuple[int, int]:
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


# Messages ------------------------------------------------------------------------------
# Each message is a frozen dataclass that travels as a JSON array: its tag, then its
# fields in order. Arrays keep a 10,000-result job's frames small; the classes keep every
# reader from taking them apart by position. Decoding checks each field's type, so a
# peer's malformed message is refused where it enters, not deep in a service.

_Check = Callable[[Any], Any]


def _exactly(kind: type) -> _Check:
    def check(value: Any) -> Any:
        if type(value) is not kind:  # `type`, not isinstance: True is no int here
            raise TypeError(f"{value!r} is not of type {kind.__name__}")
        return value

    return check


def _optional(check: _Check) -> _Check:
    return lambda value: None if value is None else check(value)


def _number(value: Any) -> float:
    if type(value) not in (float, int):  # JSON writes 2.0 as 2.0, but peers may send 2
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _tuple_of(kind: type) -> _Check:
    """Items all exactly of `kind`, checked at C speed: a report may hold thousands."""

    def convert(value: Any) -> tuple[Any, ...]:
        if type(value) not in (list, tuple):
            raise TypeError(f"{value!r} is not a list")
        if kinds := set(map(type, value)) - {kind}:
            wrong = next(item for item in value if type(item) in kinds)
            raise TypeError(f"{wrong!r} is not of type {kind.__name__}")
        return tuple(value)

    return convert


_CHECKS: dict[str, _Check] = {
    "str": _exactly(str),
    "int": _exactly(int),
    "bool": _exactly(bool),
    "float": _number,
    "str | None": _optional(_exactly(str)),
    "int | None": _optional(_exactly(int)),
    "float | None": _optional(_number),
    "tuple[int, ...]": _tuple_of(int),
    "tuple[str, ...]": _tuple_of(str),
    "dict[str, Any]": _exactly(dict),  # a model's JSON, which its reader validates
    "tuple[dict[str, Any], ...]": _tuple_of(dict),
    "list[Any]": _exactly(list),  # messages within, which their reader decodes
}
"""How each field type a message may have is read from JSON."""

_KINDS: dict[str, tuple[type[Message], tuple[_Check, ...]]] = {}

_RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "str": (str,),
    "bool": (bool,),
    "int | None": (int, type(None)),
    "str | None": (str, type(None)),
}
"""The field types a record may have, and the JSON types each is read from."""

R = TypeVar("R", bound=tuple[Any, ...])


def record(cls: type[R]) -> type[R]:
    """Let messages have a field `tuple[<cls>, ...]` of items: NamedTuples, which JSON
    writes as arrays of their fields at no cost. A frame may hold hundreds, so they are
    checked column by column, with no call per field."""
    # NamedTuple keeps a postponed annotation as a ForwardRef to its text.
    written = (getattr(kind, "__forward_arg__", kind) for kind in cls.__annotations__.values())
    kinds = tuple(frozenset(_RECORD_FIELDS[str(kind)]) for kind in written)
    make = functools.partial(tuple.__new__, cls)  # what cls._make does, without its call
    width = len(kinds)

    def convert(value: Any) -> tuple[R, ...]:
        if type(value) not in (list, tuple):
            raise TypeError(f"{str(value)[:80]} is not a list")
        # Each check is one pass at C speed; the item at fault is looked for only then.
        if not set(map(type, value)) <= {list} or not set(map(len, value)) <= {width}:
            wrong = next(i for i in value if type(i) is not list or len(i) != width)
            raise TypeError(f"{str(wrong)[:80]} is no {cls.__name__}")
        for column, allowed in enumerate(kinds):
            if not set(map(type, map(itemgetter(column), value))) <= allowed:
                wrong = next(i for i in value if type(i[column]) not in allowed)
                raise TypeError(f"{str(wrong)[:80]} is no {cls.__name__}")
        return tuple(map(make, value))

    _CHECKS[f"tuple[{cls.__name__}, ...]"] = convert
    return cls


class Message:
    """A message between burla's processes."""

    __slots__ = ()
    tag: ClassVar[str]

    def to_json(self) -> list[Any]:
        names: tuple[str, ...] = self.__slots__
        return [self.tag, *(getattr(self, name) for name in names)]


M = TypeVar("M", bound=Message)


def message(tag: str) -> Callable[[type[M]], type[M]]:
    """Register a message class under the tag it travels with."""

    def register(cls: type[M]) -> type[M]:
        if tag in _KINDS:
            raise TypeError(f"two messages are tagged {tag!r}")
        cls.tag = tag
        _KINDS[tag] = (cls, tuple(_CHECKS[str(f.type)] for f in fields(cls)))  # type: ignore[arg-type]
        return cls

    return register


def decode_message(raw: Any, expected: tuple[type[Message], ...]) -> Message:
    """The message `raw` (a decoded JSON array) holds, which must be one of `expected`."""
    if type(raw) is not list or not raw or type(raw[0]) is not str or raw[0] not in _KINDS:
        raise InvalidRequestError(f"{str(raw)[:80]} is not a burla message")
    cls, checks = _KINDS[raw[0]]
    if cls not in expected:
        raise InvalidRequestError(f"a {raw[0]!r} message came where it has no meaning")
    if len(raw) != len(checks) + 1:
        raise InvalidRequestError(
            f"a {raw[0]!r} message has {len(raw) - 1} fields, not {len(checks)}"
        )
    try:
        values = [check(value) for check, value in zip(checks, raw[1:], strict=True)]
    except TypeError as error:
        raise InvalidRequestError(f"a {raw[0]!r} message is malformed: {error}") from None
    return cls(*values)


def results_in_row(
    indices: Sequence[int], kinds: Sequence[str], sizes: Sequence[int], payload: bytes
) -> Iterator[tuple[int, str, bytes]]:
    """(index, kind, bytes) of results in a row (a job stream's frame, a page in the
    Store); InvalidRequestError unless each has a kind and a size and the bytes add up."""
    if not sized(indices, kinds, sizes) or sum(sizes) != len(payload):
        raise InvalidRequestError(
            "a row of results has a kind and a size for each input, and bytes for each"
        )
    return cut_row(indices, kinds, sizes, payload)


def sized(indices: Sequence[int], kinds: Sequence[str], sizes: Sequence[int]) -> bool:
    """Whether results in a row give a kind and a size (not negative) for each input."""
    return len(indices) == len(kinds) == len(sizes) and min(sizes, default=0) >= 0


def cut_row(
    indices: Sequence[int], kinds: Sequence[str], sizes: Sequence[int], payload: bytes
) -> Iterator[tuple[int, str, bytes]]:
    """(index, kind, bytes) of results in a row, their bytes one after another in `payload`."""
    offset = 0
    for index, kind, size in zip(indices, kinds, sizes, strict=True):
        yield index, kind, payload[offset : offset + size]
        offset += size
