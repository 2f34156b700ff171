"""Documents as JSON text that keeps every value of `Data` exactly, for the Redis store.

JSON already keeps str, int (of any size), float (`1.0` stays a float, `-0.0`, NaN and the
infinities included), bool, None, lists and dicts. Two tags add what it lacks:

- bytes become `{"$b": "<base64>"}`;
- a dict with a field name that starts with `$` is written as `{"$d": [[name, value], ...]}`,
  so no user dict can pass for a tag. Its pairs sit in a list, which JSON decoding does not
  hand to the object hook, so a user field named `$b` is never taken for bytes.

Any other JSON object is a plain dict. Text is written with ASCII escapes, so even strings
that hold lone surrogates round-trip. Nothing is ever pickled: whoever reads the store must
never unpickle bytes that user code could have written.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from burla.core.errors import InvalidRequestError
from burla.core.protocols import Data

_BYTES_TAG = "$b"
_DICT_TAG = "$d"

_PLAIN = frozenset({str, int, float, bool, type(None)})
"""Types that JSON writes and reads back as they are."""

_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode_document(key: object, data: object) -> bytes:
    """`data` as tagged JSON; InvalidRequestError, naming where, for a value `Data` cannot hold."""
    if not isinstance(key, str):
        raise InvalidRequestError(
            f"document key {key!r} is a {type(key).__name__}; document keys are str"
        )
    if not isinstance(data, dict):
        raise InvalidRequestError(
            f"document {key!r} must be a dict of fields, not a {type(data).__name__}"
        )
    return _ENCODER.encode(_encode_dict(data, f"document {key!r}")).encode("ascii")


def decode_document(payload: bytes) -> Data:
    """Undo `encode_document`; ValueError if `payload` is not such JSON."""
    data = _DECODER.decode(payload.decode("ascii"))
    if not isinstance(data, dict):
        raise ValueError(f"a document is a JSON object, not a {type(data).__name__}")
    return data


def _encode_value(value: object, where: str) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, bytes):
        return {_BYTES_TAG: base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        return [_encode_value(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        return _encode_dict(value, where)
    # Subclasses of the plain types (enums) are written as their plain value, as JSON does.
    if isinstance(value, bool | int | float | str):
        return value
    raise InvalidRequestError(
        f"{where} is a {type(value).__name__}; documents hold only str, int, float, bool, "
        "None, bytes, and lists and dicts of them: convert the value before writing it"
    )


def _encode_dict(fields: Mapping[Any, Any], where: str) -> Any:
    encoded: dict[str, Any] = {}
    tagged = False
    for name, value in fields.items():
        if not isinstance(name, str):
            raise InvalidRequestError(
                f"{where} has the field name {name!r}, which is not a str; use string field names"
            )
        tagged = tagged or name.startswith("$")
        encoded[name] = value if type(value) in _PLAIN else _encode_value(value, f"{where}.{name}")
    if tagged:
        return {_DICT_TAG: [[name, value] for name, value in encoded.items()]}
    return encoded


def _decode_object(fields: dict[str, Any]) -> Any:
    """One JSON object (its values already decoded) as the value it stands for."""
    if len(fields) == 1:
        if _BYTES_TAG in fields:
            return base64.b64decode(fields[_BYTES_TAG], validate=True)
        if _DICT_TAG in fields:
            return {name: value for name, value in fields[_DICT_TAG]}
    return fields


_DECODER = json.JSONDecoder(object_hook=_decode_object)
