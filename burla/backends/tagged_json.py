"""Documents as JSON text that keeps every value of `Data` exactly, for the stores that hold
text (SQLite, Redis).

JSON already keeps str, int (of any size), float (`1.0` stays a float, `-0.0`, NaN and the
infinities included), bool, None, lists and dicts. Tags add what it lacks: bytes become
`{<bytes tag>: "<base64>"}`, and a dict with a field name that starts with `$` is written so
that no user dict can pass for a tag. The two stores spell that dict differently
(EscapedJson, PairedJson): each keeps the spelling it always had, so what a store wrote
before still reads back. Text is written with ASCII escapes, so even strings that hold lone
surrogates round-trip. Nothing is ever pickled: whoever reads a store must never unpickle
bytes that user code could have written.
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from typing import Any

from burla.backends.store_values import Spelling, encode_document
from burla.core.protocols import Data

_ENCODER = json.JSONEncoder(separators=(",", ":"))


class TaggedJson(Spelling, ABC):
    """The tagged JSON of one store; subclasses spell dicts with `$` field names."""

    bytes_tag: str
    """The one field of the object that stands for bytes."""

    def __init__(self) -> None:
        self._decoder = json.JSONDecoder(object_hook=self._read_object)

    def encode(self, key: object, data: object) -> str:
        """`data` as tagged JSON; InvalidRequestError, naming where, for what `Data` cannot hold."""
        return _ENCODER.encode(encode_document(key, data, self))

    def decode(self, text: str) -> Data:
        """Undo `encode`; ValueError if `text` is not such JSON."""
        data = self._decoder.decode(text)
        if not isinstance(data, dict):
            raise ValueError(f"a document is a JSON object, not a {type(data).__name__}")
        return data

    def write_bytes(self, value: bytes) -> Any:
        return {self.bytes_tag: base64.b64encode(value).decode("ascii")}

    def _read_object(self, fields: dict[str, Any]) -> Any:
        """One JSON object (its values already read) as the value it stands for."""
        if len(fields) == 1 and self.bytes_tag in fields:
            return base64.b64decode(fields[self.bytes_tag], validate=True)
        return self._read_fields(fields)

    @abstractmethod
    def _read_fields(self, fields: dict[str, Any]) -> Any:
        """A JSON object that is not bytes as the dict it stands for."""


class EscapedJson(TaggedJson):
    """SQLite's: bytes are `{"$bytes": ...}`; a field name that starts with `$` gets one more
    `$` in front, and reading takes one off."""

    bytes_tag = "$bytes"

    def write_fields(self, fields: dict[str, Any]) -> Any:
        if any(name.startswith("$") for name in fields):
            return {"$" + name if name.startswith("$") else name: v for name, v in fields.items()}
        return fields

    def _read_fields(self, fields: dict[str, Any]) -> Any:
        if any(name.startswith("$") for name in fields):
            return {name[1:] if name.startswith("$") else name: v for name, v in fields.items()}
        return fields


class PairedJson(TaggedJson):
    """Redis's: bytes are `{"$b": ...}`; a dict with a field name that starts with `$` is
    `{"$d": [[name, value], ...]}`. Its pairs sit in a list, which JSON decoding does not
    hand to the object hook, so a user field named `$b` is never taken for bytes."""

    bytes_tag = "$b"

    def write_fields(self, fields: dict[str, Any]) -> Any:
        if any(name.startswith("$") for name in fields):
            return {"$d": [[name, value] for name, value in fields.items()]}
        return fields

    def _read_fields(self, fields: dict[str, Any]) -> Any:
        if len(fields) == 1 and "$d" in fields:
            return {name: value for name, value in fields["$d"]}
        return fields
