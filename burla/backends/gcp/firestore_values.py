"""How burla's keys and document data are spelled in Firestore, and back again, exactly.

Firestore holds str, int, float, bool, None, bytes, lists and maps natively, with three
gaps that burla's documents must not fall into:

- a list may not hold a list: an inner list is stored as the map `{"$list": [...]}`;
- integers are 64-bit: a larger one is stored as the map `{"$int": "<decimal digits>"}`;
- a map key may not be empty or look like `__name__`: such a key, and every key that
  starts with `$`, gets one more `$` in front, so no user map can pass for a tag.

Document ids may not contain `/`, be `.` or `..`, or look like `__name__`; `document_id`
escapes `%` and `/` and marks the few reserved spellings, one id per key. The key itself
is also kept in a field, which is what lists sort and filter by.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from burla.backends.store_values import Spelling, encode_document
from burla.core.protocols import Data

_LIST_TAG = "$list"
_INT_TAG = "$int"
_INT64 = range(-(2**63), 2**63)
_RESERVED = re.compile(r"__.*__", re.DOTALL)
"""Names Firestore keeps for itself, as map keys and as document ids."""


def document_id(name: str) -> str:
    """The Firestore document id for a burla key, queue name or item id; different names
    never share an id."""
    escaped = name.replace("%", "%25").replace("/", "%2F")
    if escaped in ("", ".", "..") or _RESERVED.fullmatch(escaped):
        return "%" + escaped  # no other escaped name starts with % and then a non-digit
    return escaped


def is_document_id(text: str) -> bool:
    """Whether `text` could name a document (receipts carry ids that users may forge)."""
    return "/" not in text and text not in ("", ".", "..") and not _RESERVED.fullmatch(text)


class _FirestoreSpelling(Spelling):
    """Inner lists, big integers and map keys as the module doc says."""

    plain = frozenset({str, float, bool, type(None)})  # every int is looked at

    def write_int(self, value: int) -> Any:
        return value if value in _INT64 else {_INT_TAG: str(value)}

    def write_list(self, items: list[Any]) -> Any:
        return [{_LIST_TAG: item} if type(item) is list else item for item in items]

    def write_fields(self, fields: dict[str, Any]) -> Any:
        return {_encode_name(name): value for name, value in fields.items()}


_SPELLING = _FirestoreSpelling()


def encode_data(key: str, data: object) -> dict[str, Any]:
    """`data` as Firestore fields; InvalidRequestError for what a document cannot hold."""
    fields: dict[str, Any] = encode_document(key, data, _SPELLING)
    return fields


def decode_data(fields: Mapping[str, Any]) -> Data:
    """Undo `encode_data`."""
    return {_decode_name(name): _decode(value) for name, value in fields.items()}


def _encode_name(name: str) -> str:
    if name == "" or name.startswith("$") or _RESERVED.fullmatch(name):
        return "$" + name
    return name


def _decode_name(name: str) -> str:
    return name[1:] if name.startswith("$") else name


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            if _LIST_TAG in value:
                return _decode(value[_LIST_TAG])
            if _INT_TAG in value:
                return int(value[_INT_TAG])
        return decode_data(value)
    return value


def approximate_size(value: Any) -> int:
    """Roughly how many bytes Firestore takes to hold `value` (encoded), to size commits."""
    if isinstance(value, str | bytes):
        return len(value) + 1
    if isinstance(value, list):
        return sum(approximate_size(item) for item in value) + 1
    if isinstance(value, dict):
        return sum(len(name) + approximate_size(item) for name, item in value.items()) + 1
    return 8
