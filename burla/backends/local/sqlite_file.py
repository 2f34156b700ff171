"""SqliteFile: one process's connection to a store's SQLite file, shared by its threads, with
SQLite's errors turned into burla's.

Every process (main_service, each worker) opens its own connection to the same file.
SQLite's write-ahead log lets readers run while one writer writes; every read-modify-write
runs in a `BEGIN IMMEDIATE` transaction (`_writing`), so it holds the write lock from its
first read and two processes never both win the same race.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Self, TypeVar

from burla.core.errors import BackendError, BurlaError, InvalidRequestError, TransientBackendError

_T = TypeVar("_T")

_CHUNK = 500
"""Values bound per `IN (...)` list; far below SQLite's limit on bound parameters."""

MOST = 2**62
"""A `limit` above every row count, and small enough for SQLite's 64-bit integers."""

_DIAGNOSES: tuple[tuple[frozenset[int], str, type[BackendError], str], ...] = (
    # (SQLite's primary result codes, words of its message, the error, what to say)
    (
        frozenset({13}),  # SQLITE_FULL
        "disk is full",
        BackendError,
        "{store} cannot grow because the disk is full ({message}); free disk space where "
        "{directory!r} lives, then retry",
    ),
    (
        frozenset({5, 6}),  # SQLITE_BUSY, SQLITE_LOCKED
        "locked",
        TransientBackendError,
        "{store} stayed locked by another connection for more than {timeout} s ({message}); "
        "another process is holding a write transaction open or is stuck: stop or restart "
        "it, then retry",
    ),
    (
        frozenset({14}),  # SQLITE_CANTOPEN
        "unable to open",
        BackendError,
        "{store} cannot be opened ({message}); check that {directory!r} exists and that this "
        "process may write there",
    ),
    (
        frozenset({8}),  # SQLITE_READONLY
        "readonly",
        BackendError,
        "{store} is read-only for this process ({message}); give it write permission on the "
        "file, its -wal and -shm files and {directory!r}",
    ),
    (
        frozenset({11, 26}),  # SQLITE_CORRUPT, SQLITE_NOTADB
        "malformed",
        BackendError,
        "{store} is damaged or is not a burla store ({message}); move the file aside (and "
        "its -wal and -shm files) to start an empty store",
    ),
)
"""What SQLite's errors mean for a store, the first that matches; both the code and the
words are looked at, since some errors come without their code."""


class SqliteFile:
    """The connection to a SQLite file, safe to share between threads; open one per process
    (a connection must not cross a fork). `schema` is run when it opens. Calls wait at most
    `busy_timeout_s` for another process's write lock before raising BackendError."""

    def __init__(
        self, path: str | os.PathLike[str], schema: Sequence[str], busy_timeout_s: float
    ) -> None:
        self._path = os.fspath(path)
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
                for statement in schema:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
        primary = code & 0xFF if isinstance(code, int) else None  # the extended code's low byte
        message = str(error)
        store = f"the SQLite store {self._path!r}"
        for codes, words, kind, advice in _DIAGNOSES:
            if primary in codes or words in message:
                return kind(
                    f"{action} failed: "
                    + advice.format(
                        store=store,
                        message=message,
                        directory=os.path.dirname(os.path.abspath(self._path)),
                        timeout=self._busy_timeout_s,
                    )
                )
        return BackendError(
            f"{action} failed: SQLite said {message!r} about {store}; check the file and its "
            "disk, then retry"
        )


def chunks(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """`values` in slices small enough to bind in one `IN (...)` list."""
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def placeholders(count: int) -> str:
    return ",".join("?" * count)
