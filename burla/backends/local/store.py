"""SqliteStore: the Store protocol in one SQLite file that many processes open at once.

Every process (main_service, each worker) opens its own SqliteStore on the same file (see
sqlite_file); the queues live in a table of their own (see sqlite_queues). Documents are
stored as JSON text (tagged_json's EscapedJson): bytes become `{"$bytes": "<base64>"}`, and
a field name that starts with `$` gets one more `$` in front, so no user dict can pass for a
tag. Nothing is ever pickled: the services that read this file must never unpickle bytes
that user code could have written.

This module imports only the standard library and burla's own modules: workers load it in
an environment that holds no other package.
"""

from __future__ import annotations

import builtins
import os
import sqlite3
from collections.abc import Mapping

from burla.backends.key_range import above_prefix
from burla.backends.local.sqlite_file import MOST, chunks, placeholders
from burla.backends.local.sqlite_queues import QUEUE_SCHEMA, SqliteQueues
from burla.backends.store_rules import check_if_version, check_version, nothing_asked
from burla.backends.tagged_json import EscapedJson
from burla.core.clock import Clock, WallClock
from burla.core.errors import BackendError
from burla.core.protocols import Data, Document

_WALL_CLOCK = WallClock()

_JSON = EscapedJson()

_DOCUMENT_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS documents (
        key TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        version INTEGER NOT NULL
    )""",
)


class SqliteStore(SqliteQueues):
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
        self._clock = clock
        super().__init__(path, _DOCUMENT_SCHEMA + QUEUE_SCHEMA, busy_timeout_s)

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
        text = _JSON.encode(key, data)
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
            found = _version(connection, key)
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
        encoded = [(key, _JSON.encode(key, data)) for key, data in docs.items()]
        if not encoded:
            return set()
        with self._writing(f"writing {len(encoded)} documents") as connection:
            if create_only:
                existing: set[str] = set()
                for chunk in chunks([key for key, _ in encoded]):
                    query = f"SELECT key FROM documents WHERE key IN ({placeholders(len(chunk))})"
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
        check_if_version(key, if_version)
        with self._writing(f"deleting document {key!r}") as connection:
            found = _version(connection, key)
            if found is None:
                return False
            check_version(key, if_version, found)
            connection.execute("DELETE FROM documents WHERE key = ?", (key,))
        return True

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:  # plain `list` here would name this method
        if nothing_asked(limit):
            return []
        upper = above_prefix(prefix)
        query = "SELECT key, data, version FROM documents WHERE key >= ? AND key > ?"
        params: tuple[object, ...] = (prefix, after)
        if upper is not None:
            query += " AND key < ?"
            params += (upper,)
        with self._reading(f"listing documents under {prefix!r}") as connection:
            rows = connection.execute(
                f"{query} ORDER BY key LIMIT ?", (*params, min(limit, MOST))
            ).fetchall()
        return [Document(key, self._decode(key, text), version) for key, text, version in rows]

    def _decode(self, key: str, text: str) -> Data:
        try:
            data: Data = _JSON.decode(text)
        except ValueError as error:  # bad JSON or bad base64: not written by SqliteStore
            raise BackendError(
                f"document {key!r} in the SQLite store {self._path!r} cannot be read ({error}); "
                "it was not written by a SqliteStore: delete it and write it again"
            ) from None
        return data


def _version(connection: sqlite3.Connection, key: str) -> int | None:
    """The version of the document at `key`, or None if there is none."""
    row = connection.execute("SELECT version FROM documents WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])
