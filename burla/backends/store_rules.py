"""Argument rules every Store backend applies the same way, with the same messages."""

from __future__ import annotations

from collections.abc import Sequence

from burla.core.errors import ConflictError, InvalidRequestError


def check_if_version(key: str, expected: int | None) -> None:
    """Refuse a negative `if_version`, whether or not the document exists."""
    if expected is not None and expected < 0:
        raise InvalidRequestError(
            f"if_version={expected} for document {key!r}: use 0 (create only), "
            "a version number of 1 or more, or None (no condition)"
        )


def check_version(key: str, expected: int | None, found: int | None) -> None:
    """Raise ConflictError unless a write that expects `expected` may go ahead."""
    check_if_version(key, expected)
    if expected is None or expected == (found or 0):
        return
    if found is None:
        raise ConflictError(
            f"document {key!r} does not exist, but the write expected version {expected}; "
            "it was deleted or never created: read it again, or create it with if_version=0"
        )
    if expected == 0:
        raise ConflictError(
            f"document {key!r} already exists at version {found}, but the write was "
            "create-only (if_version=0): read it and replace that version, or use another key"
        )
    raise ConflictError(
        f"document {key!r} is at version {found}, but the write expected version {expected}; "
        "someone else wrote it since you read it: read it again and retry"
    )


def check_limit(limit: int) -> None:
    if limit < 0:
        raise InvalidRequestError(f"limit must be 0 or more, not {limit}")


def nothing_asked(limit: int) -> bool:
    """Whether a list with this `limit` (checked) returns [] without reading: Firestore must
    not read then, as its limit 0 means no limit."""
    check_limit(limit)
    return limit == 0


def check_lease(lease_s: float) -> None:
    if not lease_s >= 0:
        raise InvalidRequestError(f"lease_s must be 0 or more, not {lease_s}")


def check_claim(queue: object, limit: int, lease_s: float) -> None:
    """Refuse a claim whose queue name, limit or lease no store takes."""
    check_queue(queue)
    check_limit(limit)
    check_lease(lease_s)


def check_queue(queue: object) -> None:
    if not isinstance(queue, str):
        raise InvalidRequestError(
            f"queue name {queue!r} is a {type(queue).__name__}; queue names are str"
        )


def check_items(queue: str, items: Sequence[tuple[str, bytes]]) -> None:
    """Refuse a push unless every item is (str id, bytes)."""
    for item_id, data in items:
        if not isinstance(item_id, str):
            raise InvalidRequestError(
                f"queue {queue!r} has an item id {item_id!r} of type "
                f"{type(item_id).__name__}; item ids are str"
            )
        check_item_data(queue, item_id, data)


def check_item_data(queue: str, item_id: object, data: object) -> None:
    if not isinstance(data, bytes):
        raise InvalidRequestError(
            f"queue {queue!r} item {item_id!r} has data of type {type(data).__name__}; "
            "queue items carry bytes: serialize the data first"
        )
