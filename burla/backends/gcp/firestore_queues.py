"""Leased work queues in Firestore: FirestoreStore's push, claim, ack and renew.

    queues/<queue id>                  {pushed}: how many items the queue was ever given
    queues/<queue id>/items/<item id>  {item_id, seq, data, deliveries, receipt,
                                        waiting | lease_expires}

An item is available while it has a `waiting` field, which holds its push order `seq`:
a claim takes the lowest ones through Firestore's automatic single-field index, oldest
first. A leased item has `lease_expires` instead. Before it claims, a claim hands every
passed lease back to `waiting` (the item keeps its receipt, which stays current until the
item is claimed again), so an expired item gets its old place in line.

A receipt is `<token>:<item document id>`, so acks and renewals read their items
directly. Every change is a commit with preconditions on what was read (see
firestore_calls): two claimers never both win an item. The tasks of one store take
turns at a queue's head; stores in other processes that race them for it spread out over
a wider window after each lost race.
"""

from __future__ import annotations

import asyncio
import random
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from google.cloud.firestore_v1 import (
    DELETE_FIELD,
    AsyncCollectionReference,
    AsyncDocumentReference,
    FieldFilter,
    Increment,
)

from burla.backends.gcp.firestore_calls import ATTEMPTS, BATCH, FirestoreCalls, Snapshot, Write
from burla.backends.gcp.firestore_values import document_id, is_document_id
from burla.core.clock import Clock
from burla.core.protocols import Claim

_STATE = ["item_id", "seq", "receipt", "waiting", "lease_expires"]
"""The fields acks, renewals and hand-backs read: not the item's data."""
_MAX_SPREAD = 64
_MOST = 2**31 - 1
"""A query `limit` above every real count, within Firestore's 32-bit limits."""


class FirestoreQueues:
    """The queues of one namespace, under `queues`."""

    def __init__(self, calls: FirestoreCalls, queues: AsyncCollectionReference, clock: Clock):
        self._calls = calls
        self._queues = queues
        self._clock = clock
        self._claiming: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def push(self, queue: str, items: dict[str, bytes]) -> None:
        """Add `items` (id -> data) in their order; ids already in the queue are left alone."""
        queue_ref: AsyncDocumentReference = self._queues.document(document_id(queue))
        items_ref = queue_ref.collection("items")
        # One atomic increment reserves a run of push-order numbers for these items.
        counted = await queue_ref.set(
            {"pushed": Increment(len(items))}, merge=True, **self._calls.rpc()
        )
        first_seq = counted.transform_results[0].integer_value - len(items) + 1
        entries: list[tuple[AsyncDocumentReference, dict[str, Any]]] = [
            (
                items_ref.document(document_id(item_id)),
                {
                    "item_id": item_id,
                    "seq": seq,
                    "waiting": seq,
                    "data": data,
                    "deliveries": 0,
                    "receipt": None,
                },
            )
            for seq, (item_id, data) in enumerate(items.items(), first_seq)
        ]
        await self._calls.create_missing(entries)

    async def claim(self, queue: str, limit: int, lease_s: float) -> list[Claim]:
        # Tasks of one process take turns at a queue's head instead of racing for it.
        turn = self._claiming.get(queue)
        if turn is None:
            turn = self._claiming[queue] = asyncio.Lock()
        async with turn:
            return await self._claim(queue, limit, lease_s)

    async def _claim(self, queue: str, limit: int, lease_s: float) -> list[Claim]:
        items = self._items(queue)
        claims: list[Claim] = []
        spread = 1
        for _ in range(ATTEMPTS):
            want = limit - len(claims)
            available = await self._available(items, min(want * spread, _MOST))
            if not available:
                break
            picked = available[:want]
            if spread > 1:  # lost a race at the head: try where the others are not
                picked = sorted(random.sample(available, len(picked)), key=_seq)
            token = uuid.uuid4().hex
            expires = self._clock.now() + lease_s
            writes = [(item, _lease(item, token, expires)) for item in picked]
            if not await self._calls.commit_unchanged(writes):
                spread = min(spread * 4, _MAX_SPREAD)
                continue
            claims.extend(
                Claim(item.get("item_id"), item.get("data"), w["receipt"], w["deliveries"], expires)
                for item, w in writes
            )
            if len(claims) == limit or len(available) < want * spread:
                break
        return claims

    async def _available(self, items: AsyncCollectionReference, count: int) -> list[Snapshot]:
        """The first `count` available items, after handing back every passed lease."""
        now = self._clock.now()
        rpc = self._calls.rpc()
        expired_query = (
            items.where(filter=FieldFilter("lease_expires", "<=", now))
            .order_by("lease_expires")
            .select(_STATE)
            .limit(BATCH)
        )
        waiting_query = items.order_by("waiting").limit(count)
        expired, waiting = await asyncio.gather(expired_query.get(**rpc), waiting_query.get(**rpc))
        if not expired:
            return list(waiting)

        def hand_back(item: Snapshot) -> Write | None:
            expires = _field(item, "lease_expires")
            if expires is None or expires > now:
                return None  # renewed or claimed since
            return {"waiting": item.get("seq"), "lease_expires": DELETE_FIELD}

        while expired:
            await self._calls.write_current(expired, hand_back, _STATE)
            if len(expired) < BATCH:
                break
            expired = await expired_query.get(**rpc)
        return list(await waiting_query.get(**rpc))

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        return await self._settle(queue, receipts, _remove)

    async def renew(self, queue: str, receipts: Sequence[str], lease_s: float) -> set[str]:
        expires = self._clock.now() + lease_s

        def extend(item: Snapshot) -> Write:
            if lease_s == 0:  # handed back: in line again at its old place, receipt ended
                return {
                    "waiting": item.get("seq"),
                    "lease_expires": DELETE_FIELD,
                    "receipt": DELETE_FIELD,
                }
            return {"waiting": DELETE_FIELD, "lease_expires": expires}

        return await self._settle(queue, receipts, extend)

    async def _settle(
        self, queue: str, receipts: Sequence[str], write: Callable[[Snapshot], Write]
    ) -> set[str]:
        """Apply `write` to the items whose receipt is current; returns those receipts."""
        wanted: dict[str, set[str]] = {}
        for receipt in receipts:
            if not isinstance(receipt, str):
                continue
            token, _, item = receipt.partition(":")
            if len(token) == 32 and is_document_id(item):
                wanted.setdefault(item, set()).add(receipt)
        if not wanted:
            return set()
        items = self._items(queue)
        found = await self._calls.get_all([items.document(item) for item in wanted], _STATE)

        def if_current(item: Snapshot) -> Write | None:
            return write(item) if _field(item, "receipt") in wanted[item.id] else None

        done = await self._calls.write_current(found, if_current, _STATE)
        return {_field(item, "receipt") for item, _ in done}

    def _items(self, queue: str) -> AsyncCollectionReference:
        items: AsyncCollectionReference = self._queues.document(document_id(queue)).collection(
            "items"
        )
        return items


def _field(snapshot: Snapshot, name: str) -> Any:
    """A field that may be absent (None then)."""
    return (snapshot.to_dict() or {}).get(name)


def _seq(item: Snapshot) -> int:
    seq: int = item.get("seq")
    return seq


def _lease(item: Snapshot, token: str, expires: float) -> dict[str, Any]:
    return {
        "waiting": DELETE_FIELD,
        "lease_expires": expires,
        "receipt": f"{token}:{item.id}",
        "deliveries": item.get("deliveries") + 1,
    }


def _remove(item: Snapshot) -> Write:
    return "delete"
