"""SqliteQueues: the leased work queues of a SqliteStore, in one table of its SQLite file.

Queue items keep their push order in `seq` (the rowid). An item is available while
`lease_expires` is NULL; a claim first sets it back to NULL on every item whose lease has
passed (keeping the item's receipt, which stays current until the item is claimed again),
then leases the available items with the lowest `seq`. A receipt is `<claim token>-<seq>`,
so acks and renewals find their items by rowid, without an index on receipts.
"""

from __future__ import annotations

import builtins
import sqlite3
import uuid
from collections.abc import Mapping, Sequence

from burla.backends.local.sqlite_file import MOST, SqliteFile, chunks, placeholders
from burla.backends.store_rules import check_claim, check_items, check_lease, check_queue
from burla.core.clock import Clock
from burla.core.protocols import Claim

QUEUE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS queue_items (
        seq INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        item_id TEXT NOT NULL,
        data BLOB NOT NULL,
        receipt TEXT,
        deliveries INTEGER NOT NULL DEFAULT 0,
        lease_expires REAL,
        UNIQUE (queue, item_id)
    )""",
    # Claims read the available items (lease_expires IS NULL) of one queue in seq order,
    # and find passed leases by a range on lease_expires. Acks and renewals need no index:
    # a receipt names its item's seq, the rowid.
    "CREATE INDEX IF NOT EXISTS queue_items_by_lease ON queue_items (queue, lease_expires, seq)",
)

_OLDEST_AVAILABLE = (
    "FROM queue_items WHERE queue = ? AND lease_expires IS NULL ORDER BY seq LIMIT ?"
)
"""The first `limit` items of a queue that no one holds (passed leases already released)."""


class SqliteQueues(SqliteFile):
    """The queue half of the Store protocol on a SqliteFile whose schema has QUEUE_SCHEMA;
    leases run on `_clock`, which the store sets."""

    _clock: Clock

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        check_queue(queue)
        check_items(queue, items)
        if not items:
            return
        with self._writing(f"pushing {len(items)} items to queue {queue!r}") as connection:
            connection.executemany(
                "INSERT INTO queue_items (queue, item_id, data) VALUES (?, ?, ?) "
                "ON CONFLICT (queue, item_id) DO NOTHING",
                [(queue, item_id, data) for item_id, data in items],
            )

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        check_claim(queue, limit, lease_s)
        if limit == 0:
            return []
        action = f"claiming items from queue {queue!r}"
        # A read first, outside any transaction: claimers polling an empty queue do not
        # take turns on the write lock.
        with self._reading(action) as connection:
            [(available,)] = connection.execute(
                "SELECT EXISTS (SELECT 1 FROM queue_items WHERE queue = ? "
                "AND lease_expires IS NULL) OR EXISTS (SELECT 1 FROM queue_items "
                "WHERE queue = ? AND lease_expires <= ?)",
                (queue, queue, self._clock.now()),
            ).fetchall()
        if not available:
            return []
        with self._writing(action) as connection:
            now = self._clock.now()
            connection.execute(
                "UPDATE queue_items SET lease_expires = NULL "
                "WHERE queue = ? AND lease_expires <= ?",
                (queue, now),
            )
            rows = connection.execute(
                f"SELECT seq, item_id, data, deliveries {_OLDEST_AVAILABLE}",
                (queue, min(limit, MOST)),
            ).fetchall()
            # A receipt is a token of this claim followed by the item's seq: it names one
            # delivery, and ack and renew find its item by rowid.
            token = f"{uuid.uuid4().hex}-"
            expires = now + lease_s
            connection.execute(
                "UPDATE queue_items "
                "SET receipt = ? || seq, deliveries = deliveries + 1, lease_expires = ? "
                f"WHERE seq IN (SELECT seq {_OLDEST_AVAILABLE})",
                (token, expires, queue, min(limit, MOST)),
            )
            claims = [
                Claim(item_id, data, f"{token}{seq}", deliveries + 1, expires)
                for seq, item_id, data, deliveries in rows
            ]
        return claims

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        check_queue(queue)
        wanted = _receipts_by_seq(receipts)
        if not wanted:
            return set()
        with self._writing(f"acking {len(receipts)} items of queue {queue!r}") as connection:
            current = self._current(connection, queue, wanted)
            for chunk in chunks(builtins.list(current)):
                connection.execute(
                    f"DELETE FROM queue_items WHERE seq IN ({placeholders(len(chunk))})", chunk
                )
        return set(current.values())

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        check_queue(queue)
        check_lease(lease_s)
        wanted = _receipts_by_seq(receipts)
        if not wanted:
            return set()
        with self._writing(f"renewing {len(receipts)} leases in queue {queue!r}") as connection:
            current = self._current(connection, queue, wanted)
            # Handed back (0): available at once, and the receipt ends.
            change = "lease_expires = NULL, receipt = NULL" if lease_s == 0 else "lease_expires = ?"
            values = () if lease_s == 0 else (self._clock.now() + lease_s,)
            for chunk in chunks(builtins.list(current)):
                connection.execute(
                    f"UPDATE queue_items SET {change} WHERE seq IN ({placeholders(len(chunk))})",
                    (*values, *chunk),
                )
        return set(current.values())

    def _current(
        self, connection: sqlite3.Connection, queue: str, wanted: Mapping[int, set[str]]
    ) -> dict[int, str]:
        """seq -> receipt of the wanted items whose receipt is still current."""
        current: dict[int, str] = {}
        for chunk in chunks(builtins.list(wanted)):
            rows = connection.execute(
                "SELECT seq, queue, receipt FROM queue_items "
                f"WHERE seq IN ({placeholders(len(chunk))})",
                chunk,
            )
            for seq, item_queue, receipt in rows:
                if item_queue == queue and receipt in wanted[seq]:
                    current[seq] = receipt
        return current


def _receipts_by_seq(receipts: Sequence[str]) -> dict[int, set[str]]:
    """The receipts to look for, by the seq each names (see the module doc).

    A receipt that names no seq was never handed out, so it is current nowhere.
    """
    wanted: dict[int, set[str]] = {}
    for receipt in receipts:
        if not isinstance(receipt, str):
            continue
        try:
            seq = int(receipt.rpartition("-")[2])
        except ValueError:
            continue
        if not 0 < seq < 2**63:  # beyond SQLite's integers: no row has it
            continue
        wanted.setdefault(seq, set()).add(receipt)
    return wanted
