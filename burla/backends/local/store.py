"""SqliteStore: the Store protocol in one SQLite file that many processes open at once.

Every process (main_service, each worker) opens its own SqliteStore on the same file.
SQLite's write-ahead log lets readers run while one writer writes; every read-modify-write
(compare-and-set, claim, ack, renew) runs in a `BEGIN IMMEDIATE` transaction, so it holds
the write lock from its first read and two processes never both win the same race.

Documents are stored as JSON text. Bytes become `{"$bytes": "<base64>"}`, and a field name
that starts with `$` gets one more `$` in front, so no user dict can pass for a tag; decoding
undoes both exactly. Nothing is ever pickled: the services that read this file must never
unpickle bytes that user code could have written.

Queue items keep their push order in `seq` (the rowid). An item is available while
`lease_expires` is NULL; a claim first sets it back to NULL on every item whose lease has
passed (keeping the item's receipt, which stays current until the item is claimed again),
then leases the available items with the lowest `seq`. A receipt is `<claim token>-<seq>`,
so acks and renewals find their items by rowid, without an index on receipts.

This module imports only the standard library and burla.core's protocols, errors and clock:
workers load it in an environment that holds no other package.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from burla.backends.store_rules import check_lease, check_limit, check_version
from burla.core.clock import Clock, WallClock
from burla.core.errors import BackendError, BurlaError, InvalidRequestError, TransientBackendError
from burla.core.protocols import Claim, Data, Document

_WALL_CLOCK = WallClock()

_T = TypeVar("_T")

_BYTES_TAG = "$bytes"

_CHUNK = 500
"""Values bound per `IN (...)` list; far below SQLite's limit on bound parameters."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS documents (
        key TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        version INTEGER NOT NULL
    )""",
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

_MOST = 2**62
"""A `limit` above every row count, and small enough for SQLite's 64-bit integers."""

_OLDEST_AVAILABLE = (
    "FROM queue_items WHERE queue = ? AND lease_expires IS NULL ORDER BY seq LIMIT ?"
)
"""The first `limit` items of a queue that no one holds (passed leases already released)."""

# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_READONLY = 8
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


# Encoding documents


_PLAIN = frozenset({str, int, float, bool, type(None)})
"""Types written to JSON as they are."""

_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""Writes every subclass of a plain type (an enum) as its plain value."""


def _encode_value(value: object, parent: str, step: str | int) -> Any:
    """`value` as JSON-ready data; InvalidRequestError for a type a document cannot hold.

    `parent` and `step` (a field name or a list index) say where the value sits; the path
    is spelled out only when it is needed, which is rarely.
    """
    if type(value) in _PLAIN:
        return value
    if isinstance(value, bytes):
        return {_BYTES_TAG: base64.b64encode(value).decode("ascii")}
    where = f"{parent}[{step}]" if isinstance(step, int) else f"{parent}.{step}"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_encode_value(item, where, index) for index, item in enumerate(value)]
    if isinstance(value, dict):
        return _encode_fields(value, where)
    raise InvalidRequestError(
        f"{where} is a {type(value).__name__}; documents hold only str, int, float, bool, "
        "None, bytes, and lists and dicts of them: convert the value before writing it"
    )


def _encode_fields(fields: Mapping[Any, Any], where: str) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for name, value in fields.items():
        if not isinstance(name, str):
            raise InvalidRequestError(
                f"{where} has the field name {name!r}, which is not a str; use string field names"
            )
        stored = "$" + name if name.startswith("$") else name
        encoded[stored] = value if type(value) in _PLAIN else _encode_value(value, where, name)
    return encoded


def _encode_document(key: object, data: object) -> str:
    if not isinstance(key, str):
        raise InvalidRequestError(
            f"document key {key!r} is a {type(key).__name__}; document keys are str"
        )
    if not isinstance(data, dict):
        raise InvalidRequestError(
            f"document {key!r} must be a dict of fields, not a {type(data).__name__}"
        )
    return _ENCODER.encode(_encode_fields(data, f"document {key!r}"))


def _decode_object(fields: dict[str, Any]) -> Any:
    """Undo `_encode_fields` for one JSON object (inner objects are already decoded)."""
    if _BYTES_TAG in fields and len(fields) == 1:
        return base64.b64decode(fields[_BYTES_TAG])
    for name in fields:
        if name.startswith("$"):
            return {
                name[1:] if name.startswith("$") else name: value for name, value in fields.items()
            }
    return fields


_DECODER = json.JSONDecoder(object_hook=_decode_object)


# Checking arguments


def _check_queue(queue: object) -> None:
    if not isinstance(queue, str):
        raise InvalidRequestError(
            f"queue name {queue!r} is a {type(queue).__name__}; queue names are str"
        )


def _above_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix` (None if none).

    Python orders str by code point and SQLite orders TEXT by its UTF-8 bytes: the same
    order, so this bound serves both.
    """
    while prefix:
        following = ord(prefix[-1]) + 1
        if following <= 0x10FFFF:
            if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be stored; skip them
                following = 0xE000
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None


def _receipts_by_seq(receipts: Sequence[str]) -> dict[int, set[str]]:
    """The receipts to look for, by the seq each names (see `SqliteStore.claim`).

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


def _chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


class SqliteStore:
    """The Store protocol in a SQLite file, safe to share between threads and processes.

    One connection per instance; open one instance per process (a connection must not cross
    a fork). Calls run their SQL directly, without a worker thread: each takes well under
    a millisecond unless another process holds the write lock, and then waits at most
    `busy_timeout_s` before raising BackendError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock = _WALL_CLOCK,
        *,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self._path = os.fspath(path)
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._connection: sqlite3.Connection | None = None
        with self._translated("opening the store"):
            connection = sqlite3.connect(
                self._path,
                timeout=busy_timeout_s,
                isolation_level=None,  # autocommit: transactions are begun explicitly
                check_same_thread=False,  # shared by threads under self._lock
            )
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.execute("BEGIN IMMEDIATE")
                for statement in _SCHEMA:
                    connection.execute(statement)
                connection.execute("COMMIT")
            except BaseException:
                connection.close()
                raise
        self._connection = connection

    @property
    def path(self) -> str:
        return self._path

    def close(self) -> None:
        """Close the connection; later calls raise BackendError. Closing twice is fine."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Documents

    async def get(self, key: str) -> Document | None:
        with self._reading(f"reading document {key!r}") as connection:
            row = connection.execute(
                "SELECT data, version FROM documents WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return Document(key, self._decode(key, row[0]), row[1])

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        text = _encode_document(key, data)
        if if_version is None:  # one statement, atomic by itself: no transaction to open
            with self._reading(f"writing document {key!r}") as connection:
                (version,) = connection.execute(
                    "INSERT INTO documents (key, data, version) VALUES (?, ?, 1) "
                    "ON CONFLICT (key) DO UPDATE "
                    "SET data = excluded.data, version = documents.version + 1 "
                    "RETURNING version",
                    (key, text),
                ).fetchone()
            return Document(key, self._decode(key, text), version)
        with self._writing(f"writing document {key!r}") as connection:
            row = connection.execute(
                "SELECT version FROM documents WHERE key = ?", (key,)
            ).fetchone()
            found: int | None = None if row is None else row[0]
            check_version(key, if_version, found)
            if found is None:
                version = 1
                connection.execute(
                    "INSERT INTO documents (key, data, version) VALUES (?, ?, 1)", (key, text)
                )
            else:
                version = found + 1
                connection.execute(
                    "UPDATE documents SET data = ?, version = ? WHERE key = ?",
                    (text, version, key),
                )
        return Document(key, self._decode(key, text), version)

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        encoded = [(key, _encode_document(key, data)) for key, data in docs.items()]
        if not encoded:
            return set()
        with self._writing(f"writing {len(encoded)} documents") as connection:
            if create_only:
                existing: set[str] = set()
                for chunk in _chunks([key for key, _ in encoded]):
                    query = f"SELECT key FROM documents WHERE key IN ({_placeholders(len(chunk))})"
                    existing.update(row[0] for row in connection.execute(query, chunk))
                encoded = [(key, text) for key, text in encoded if key not in existing]
                connection.executemany(
                    "INSERT INTO documents (key, data, version) VALUES (?, ?, 1)", encoded
                )
            else:
                connection.executemany(
                    "INSERT INTO documents (key, data, version) VALUES (?, ?, 1) "
                    "ON CONFLICT (key) DO UPDATE "
                    "SET data = excluded.data, version = documents.version + 1",
                    encoded,
                )
        return {key for key, _ in encoded}

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        with self._writing(f"deleting document {key!r}") as connection:
            row = connection.execute(
                "SELECT version FROM documents WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return False
            check_version(key, if_version, row[0])
            connection.execute("DELETE FROM documents WHERE key = ?", (key,))
        return True

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:  # plain `list` here would name this method
        check_limit(limit)
        if limit == 0:
            return []
        upper = _above_prefix(prefix)
        query = "SELECT key, data, version FROM documents WHERE key >= ? AND key > ?"
        params: tuple[object, ...] = (prefix, after)
        if upper is not None:
            query += " AND key < ?"
            params += (upper,)
        with self._reading(f"listing documents under {prefix!r}") as connection:
            rows = connection.execute(
                f"{query} ORDER BY key LIMIT ?", (*params, min(limit, _MOST))
            ).fetchall()
        return [Document(key, self._decode(key, text), version) for key, text, version in rows]

    # Queues

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        _check_queue(queue)
        for item_id, data in items:
            if not isinstance(item_id, str):
                raise InvalidRequestError(
                    f"queue {queue!r} has an item id {item_id!r} of type "
                    f"{type(item_id).__name__}; item ids are str"
                )
            if not isinstance(data, bytes):
                raise InvalidRequestError(
                    f"queue {queue!r} item {item_id!r} has data of type {type(data).__name__}; "
                    "queue items carry bytes: serialize the data first"
                )
        if not items:
            return
        with self._writing(f"pushing {len(items)} items to queue {queue!r}") as connection:
            connection.executemany(
                "INSERT INTO queue_items (queue, item_id, data) VALUES (?, ?, ?) "
                "ON CONFLICT (queue, item_id) DO NOTHING",
                [(queue, item_id, data) for item_id, data in items],
            )

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        _check_queue(queue)
        check_limit(limit)
        check_lease(lease_s)
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
                (queue, min(limit, _MOST)),
            ).fetchall()
            # A receipt is a token of this claim followed by the item's seq: it names one
            # delivery, and ack and renew find its item by rowid.
            token = f"{uuid.uuid4().hex}-"
            expires = now + lease_s
            connection.execute(
                "UPDATE queue_items "
                "SET receipt = ? || seq, deliveries = deliveries + 1, lease_expires = ? "
                f"WHERE seq IN (SELECT seq {_OLDEST_AVAILABLE})",
                (token, expires, queue, min(limit, _MOST)),
            )
            claims = [
                Claim(item_id, data, f"{token}{seq}", deliveries + 1, expires)
                for seq, item_id, data, deliveries in rows
            ]
        return claims

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        _check_queue(queue)
        wanted = _receipts_by_seq(receipts)
        if not wanted:
            return set()
        with self._writing(f"acking {len(receipts)} items of queue {queue!r}") as connection:
            current = self._current(connection, queue, wanted)
            for chunk in _chunks(builtins.list(current)):
                connection.execute(
                    f"DELETE FROM queue_items WHERE seq IN ({_placeholders(len(chunk))})", chunk
                )
        return set(current.values())

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        _check_queue(queue)
        check_lease(lease_s)
        wanted = _receipts_by_seq(receipts)
        if not wanted:
            return set()
        with self._writing(f"renewing {len(receipts)} leases in queue {queue!r}") as connection:
            expires = self._clock.now() + lease_s
            current = self._current(connection, queue, wanted)
            for chunk in _chunks(builtins.list(current)):
                connection.execute(
                    "UPDATE queue_items SET lease_expires = ? "
                    f"WHERE seq IN ({_placeholders(len(chunk))})",
                    (expires, *chunk),
                )
        return set(current.values())

    def _current(
        self, connection: sqlite3.Connection, queue: str, wanted: Mapping[int, set[str]]
    ) -> dict[int, str]:
        """seq -> receipt of the wanted items whose receipt is still current."""
        current: dict[int, str] = {}
        for chunk in _chunks(builtins.list(wanted)):
            rows = connection.execute(
                "SELECT seq, queue, receipt FROM queue_items "
                f"WHERE seq IN ({_placeholders(len(chunk))})",
                chunk,
            )
            for seq, item_queue, receipt in rows:
                if item_queue == queue and receipt in wanted[seq]:
                    current[seq] = receipt
        return current

    # The connection and its errors

    @contextmanager
    def _reading(self, action: str) -> Iterator[sqlite3.Connection]:
        """The connection, held by this thread, with SQLite's errors turned into burla's:
        for reads, and for writes of one statement (each is a transaction of its own)."""
        with self._lock, self._translated(action):
            yield self._open_connection()

    @contextmanager
    def _writing(self, action: str) -> Iterator[sqlite3.Connection]:
        """Like `_reading`, inside a transaction that holds SQLite's write lock from the start.

        The transaction commits when the block ends and rolls back if it raises.
        """
        with self._lock, self._translated(action):
            connection = self._open_connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    with suppress(sqlite3.Error):  # the error that got us here says more
                        connection.execute("ROLLBACK")
                raise

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise BackendError(
                f"the SQLite store {self._path!r} is closed: open a new SqliteStore to use it"
            )
        if os.getpid() != self._pid:
            raise BackendError(
                f"this SqliteStore on {self._path!r} was opened in process {self._pid} and is "
                f"used in process {os.getpid()}; a SQLite connection must not cross a fork: "
                "open a new SqliteStore in each process"
            )
        return self._connection

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except BurlaError:
            raise
        except sqlite3.Error as error:
            raise self._backend_error(error, action) from error
        except UnicodeEncodeError as error:
            raise InvalidRequestError(
                f"{action}: a key, queue name, item id or receipt is not valid Unicode text "
                f"({error.reason}); use text that encodes to UTF-8"
            ) from None

    def _backend_error(self, error: sqlite3.Error, action: str) -> BackendError:
        code = getattr(error, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        message = str(error)
        store = f"the SQLite store {self._path!r}"
        directory = os.path.dirname(os.path.abspath(self._path))
        if primary == _SQLITE_FULL or "disk is full" in message:
            return BackendError(
                f"{action} failed: {store} cannot grow because the disk is full ({message}); "
                f"free disk space where {directory!r} lives, then retry"
            )
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "locked" in message:
            return TransientBackendError(
                f"{action} failed: {store} stayed locked by another connection for more than "
                f"{self._busy_timeout_s} s ({message}); another process is holding a write "
                "transaction open or is stuck: stop or restart it, then retry"
            )
        if primary == _SQLITE_CANTOPEN or "unable to open" in message:
            return BackendError(
                f"{action} failed: {store} cannot be opened ({message}); check that "
                f"{directory!r} exists and that this process may write there"
            )
        if primary == _SQLITE_READONLY or "readonly" in message:
            return BackendError(
                f"{action} failed: {store} is read-only for this process ({message}); give it "
                f"write permission on the file, its -wal and -shm files and {directory!r}"
            )
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in message:
            return BackendError(
                f"{action} failed: {store} is damaged or is not a burla store ({message}); "
                "move the file aside (and its -wal and -shm files) to start an empty store"
            )
        return BackendError(
            f"{action} failed: SQLite said {message!r} about {store}; check the file and its "
            "disk, then retry"
        )

    def _decode(self, key: str, text: str) -> Data:
        try:
            data: Data = _DECODER.decode(text)
        except ValueError as error:  # bad JSON or bad base64: not written by SqliteStore
            raise BackendError(
                f"document {key!r} in the SQLite store {self._path!r} cannot be read ({error}); "
                "it was not written by a SqliteStore: delete it and write it again"
            ) from None
        return data
