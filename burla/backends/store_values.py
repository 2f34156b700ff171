"""What a Store document may hold, checked by one walk for every store; each store's Spelling
says how it writes the values its database cannot hold as they are."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from burla.core.errors import InvalidRequestError
from burla.core.protocols import Data

_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})


class Spelling:
    """How a store writes checked values. This one keeps them as they are (as plain types:
    subclasses such as enums become the plain type, as after a round trip through any
    database); a store overrides what its database cannot hold."""

    plain: frozenset[type] = _PLAIN
    """Types written as they are without another look: the walk's fast path."""

    def write_int(self, value: int) -> Any:
        return value

    def write_bytes(self, value: bytes) -> Any:
        return value

    def write_list(self, items: builtins.list[Any]) -> Any:
        """A list whose items are already written."""
        return items

    def write_fields(self, fields: dict[str, Any]) -> Any:
        """A dict whose values are already written."""
        return fields


KEEP = Spelling()


def encode_document(key: object, data: object, spelling: Spelling = KEEP) -> Any:
    """`data` checked and written in `spelling`; InvalidRequestError, naming where, for a key
    or a value that a document cannot hold."""
    if not isinstance(key, str):
        raise InvalidRequestError(
            f"document key {key!r} is a {type(key).__name__}; document keys are str"
        )
    if not isinstance(data, dict):
        raise InvalidRequestError(
            f"document {key!r} must be a dict of fields, not a {type(data).__name__}"
        )
    return _fields(data, f"document {key!r}", spelling)


def plain_fields(fields: Mapping[str, Any], where: str) -> Data:
    """A private copy of fields that were checked before, for a store that keeps them in memory."""
    copied: Data = _fields(fields, where, KEEP)
    return copied


def _fields(fields: Mapping[Any, Any], where: str, spelling: Spelling) -> Any:
    plain = spelling.plain
    written: dict[str, Any] = {}
    for name, value in fields.items():
        if not isinstance(name, str):
            raise InvalidRequestError(
                f"{where} has the field name {name!r}, which is not a str; use string field names"
            )
        written[name] = value if type(value) in plain else _value(value, where, name, spelling)
    return spelling.write_fields(written)


def _value(value: object, parent: str, step: str | int, spelling: Spelling) -> Any:
    """`value`, which sits at `step` (a field name or a list index) of `parent`, checked and
    written; the path is spelled out only when it is needed, which is rarely."""
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return spelling.write_int(int(value))
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytes):
        return spelling.write_bytes(bytes(value))
    where = f"{parent}[{step}]" if isinstance(step, int) else f"{parent}.{step}"
    if isinstance(value, list):
        plain = spelling.plain
        return spelling.write_list(
            [
                item if type(item) in plain else _value(item, where, index, spelling)
                for index, item in enumerate(value)
            ]
        )
    if isinstance(value, dict):
        return _fields(value, where, spelling)
    raise InvalidRequestError(
        f"{where} is a {type(value).__name__}; documents hold only str, int, float, bool, "
        "None, bytes, and lists and dicts of them: convert the value before writing it"
    )
