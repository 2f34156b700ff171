"""MemoryStore: versioned documents and leased work queues held in one process's memory."""

from __future__ import annotations

import builtins
import heapq
import itertools
import uuid
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from burla.backends.store_rules import (
    check_if_version,
    check_items,
    check_lease,
    check_limit,
    check_version,
)
from burla.backends.store_values import encode_document, plain_fields
from burla.core.clock import Clock, WallClock
from burla.core.protocols import Claim, Data, Document


@dataclass(eq=False)
class _Item:
    data: bytes
    seq: int
    """Push order; claims hand out the lowest available first."""
    receipt: str | None = None
    deliveries: int = 0
    lease_expires: float | None = None
    """None until first claimed; the item is available when this is None or has passed."""
    queued: bool = True
    """True while an entry for this item sits in its queue's `ready` heap."""


@dataclass(eq=False)
class _Queue:
    items: dict[str, _Item] = field(default_factory=dict)
    ready: list[tuple[int, str]] = field(default_factory=list)
    """Heap of (seq, item_id) of available items; entries may be stale and are checked."""
    leases: list[tuple[float, int, str, str]] = field(default_factory=list)
    """Heap of (lease_expires, tiebreak, item_id, receipt); stale entries are skipped."""
    receipts: dict[str, str] = field(default_factory=dict)
    """Latest receipt -> item id, for every item claimed at least once: a receipt leaves
    when its item is claimed again or acked, so every receipt here is current."""

    def release_expired(self, now: float) -> None:
        """Move items whose lease has passed back to `ready`."""
        while self.leases and self.leases[0][0] <= now:
            expires, _, item_id, receipt = heapq.heappop(self.leases)
            item = self.items.get(item_id)
            if item is None or item.receipt != receipt or item.lease_expires != expires:
                continue
            if not item.queued:
                item.queued = True
                heapq.heappush(self.ready, (item.seq, item_id))

    def compact_leases(self) -> None:
        """Drop lease entries of removed or re-leased items once they outnumber live items."""
        if len(self.leases) <= 2 * len(self.items) + 1024:
            return
        live = []
        for entry in self.leases:
            item = self.items.get(entry[2])
            if item is not None and item.receipt == entry[3] and item.lease_expires == entry[0]:
                live.append(entry)
        heapq.heapify(live)
        self.leases = live


class MemoryStore:
    """The Store protocol in memory: for the simulator, unit tests and a one-process cluster.

    No method awaits in the middle of a change, so each call is atomic with respect to
    other tasks on the same event loop. Data is copied in and out.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else WallClock()
        self._docs: dict[str, Document] = {}
        self._keys: list[str] = []
        """Every document key, sorted, for `list`."""
        self._queues: dict[str, _Queue] = {}
        self._counter = itertools.count()

    # Documents

    async def get(self, key: str) -> Document | None:
        doc = self._docs.get(key)
        if doc is None:
            return None
        return Document(key, plain_fields(doc.data, f"document {key!r}"), doc.version)

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        copied = encode_document(key, data)
        old = self._docs.get(key)
        check_version(key, if_version, None if old is None else old.version)
        stored = self._write(key, copied, old)
        return Document(key, plain_fields(stored.data, f"document {key!r}"), stored.version)

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        copies = {key: encode_document(key, data) for key, data in docs.items()}
        written: set[str] = set()
        for key, copied in copies.items():
            old = self._docs.get(key)
            if create_only and old is not None:
                continue
            self._write(key, copied, old)
            written.add(key)
        return written

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        check_if_version(key, if_version)
        old = self._docs.get(key)
        if old is None:
            return False
        check_version(key, if_version, old.version)
        del self._docs[key]
        del self._keys[bisect_left(self._keys, key)]
        return True

    async def list(self, prefix: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        check_limit(limit)
        start = max(bisect_left(self._keys, prefix), bisect_right(self._keys, after))
        found: list[Document] = []
        for index in range(start, len(self._keys)):
            key = self._keys[index]
            if len(found) >= limit or not key.startswith(prefix):
                break
            doc = self._docs[key]
            found.append(Document(key, plain_fields(doc.data, f"document {key!r}"), doc.version))
        return found

    def _write(self, key: str, data: Data, old: Document | None) -> Document:
        if old is None:
            insort(self._keys, key)
        doc = Document(key, data, 1 if old is None else old.version + 1)
        self._docs[key] = doc
        return doc

    # Queues

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        check_items(queue, items)
        if not items:
            return
        state = self._queues.setdefault(queue, _Queue())
        for item_id, data in items:
            if item_id in state.items:
                continue
            seq = next(self._counter)
            state.items[item_id] = _Item(data=bytes(data), seq=seq)
            heapq.heappush(state.ready, (seq, item_id))

    async def claim(
        self, queue: str, *, limit: int, lease_s: float
    ) -> builtins.list[Claim]:  # plain `list` here would name the method above
        check_limit(limit)
        check_lease(lease_s)
        state = self._queues.get(queue)
        if state is None:
            return []
        now = self._clock.now()
        state.release_expired(now)
        claims: list[Claim] = []
        while state.ready and len(claims) < limit:
            seq, item_id = heapq.heappop(state.ready)
            item = state.items.get(item_id)
            if item is None or item.seq != seq:
                continue
            item.queued = False
            if item.lease_expires is not None and item.lease_expires > now:
                continue  # renewed by its holder after the lease had passed
            if item.receipt is not None:
                del state.receipts[item.receipt]
            receipt = uuid.uuid4().hex
            expires = now + lease_s
            item.receipt = receipt
            item.deliveries += 1
            item.lease_expires = expires
            state.receipts[receipt] = item_id
            self._lease(state, item_id, receipt, expires)
            claims.append(Claim(item_id, item.data, receipt, item.deliveries, expires))
        return claims

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        state = self._queues.get(queue)
        if state is None:
            return set()
        acked: set[str] = set()
        for receipt in receipts:
            item_id = state.receipts.pop(receipt, None)
            if item_id is None:
                continue
            del state.items[item_id]
            acked.add(receipt)
        if not state.items:
            del self._queues[queue]
        else:
            state.compact_leases()
        return acked

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        check_lease(lease_s)
        state = self._queues.get(queue)
        if state is None:
            return set()
        now = self._clock.now()
        renewed: set[str] = set()
        for receipt in receipts:
            item_id = state.receipts.get(receipt)
            if item_id is None:
                continue
            item = state.items[item_id]
            renewed.add(receipt)
            if lease_s == 0:  # handed back: in line again at its old place, receipt ended
                del state.receipts[receipt]
                item.receipt = item.lease_expires = None
                if not item.queued:
                    item.queued = True
                    heapq.heappush(state.ready, (item.seq, item_id))
                continue
            item.lease_expires = now + lease_s
            self._lease(state, item_id, receipt, item.lease_expires)
        state.compact_leases()
        return renewed

    def _lease(self, state: _Queue, item_id: str, receipt: str, expires: float) -> None:
        heapq.heappush(state.leases, (expires, next(self._counter), item_id, receipt))
