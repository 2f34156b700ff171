"""RedisStore: the Store protocol on a Redis server that every process of a cluster shares.

Each operation that reads and then writes (compare-and-set, create-only, claim, ack, renew)
is one Lua script (see scripts.py), which Redis runs with no other command in between; so
two processes never both win a race, and two claimers never hold the same item. Scripts are
sent once and then called by their SHA1 (redis-py sends the text again if the server has
forgotten it).

Every key of a store starts with `burla:{<namespace>}:`, so many clusters and test runs can
share one server without seeing each other; the braces make the namespace a Redis Cluster
hash tag too, which keeps all of a store's keys on one shard, as multi-key scripts need.
Documents live in one hash, with a sorted set of their keys beside it: Redis keeps that set
in byte order, so listing a prefix is a range read, never a scan of the server.

Lease times come from the Redis server's clock unless the store is given a Clock: processes
on many machines then agree on when a lease ends even if their own clocks drift. Give every
store of one namespace the same kind of time.
"""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from burla.backends.redis import scripts
from burla.backends.store_rules import (
    check_if_version,
    check_item_data,
    check_lease,
    check_limit,
    check_version,
)
from burla.backends.tagged_json import PairedJson
from burla.core.clock import Clock
from burla.core.errors import BackendError, InvalidRequestError, TransientBackendError
from burla.core.protocols import Claim, Data, Document

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ModuleNotFoundError(
        "the Redis store needs the redis package: pip install 'burla-cluster[redis]'", name="redis"
    ) from error

_NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,100}")

_BATCH = 2000
"""Documents, items or receipts per script call: Redis serves no one else while a script runs."""

_CONNECT_TIMEOUT_S = 10.0
_REPLY_TIMEOUT_S = 60.0
"""Far above the slowest script (a claim of 100,000 items takes about a second)."""

_MOST = 2**62
"""A `limit` above any count Redis holds, and still a 64-bit integer for it."""

_JSON = PairedJson()


def _utf8(text: object, what: str) -> bytes:
    """`text` as the UTF-8 bytes Redis stores; InvalidRequestError if it is not str or has
    lone surrogates."""
    if not isinstance(text, str):
        raise InvalidRequestError(f"{what} {text!r} is a {type(text).__name__}; use a str")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRequestError(
            f"{what} {text!r} is not valid Unicode text ({error.reason}); use text that "
            "encodes to UTF-8"
        ) from None


def _check_namespace(namespace: object) -> None:
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise InvalidRequestError(
            f"Redis store namespace {namespace!r} must be 1 to 100 letters, digits, '.', "
            "'_' or '-'; name it after the cluster, e.g. 'burla-prod'"
        )


def _after_prefix(prefix: bytes) -> bytes | None:
    """The smallest byte string above every string that starts with `prefix` (None if none).

    UTF-8 never holds the byte 0xFF, so raising the last byte of a non-empty prefix does it.
    """
    return prefix[:-1] + bytes([prefix[-1] + 1]) if prefix else None


def _chunks(values: Sequence[Any], size: int = _BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _describe(client: aioredis.Redis) -> str:
    """Where `client` connects, for error messages (never with its password)."""
    settings = client.connection_pool.connection_kwargs
    if "path" in settings:
        return f"the Redis server at unix://{settings['path']}"
    host, port, db = (
        settings.get("host", "localhost"),
        settings.get("port", 6379),
        settings.get("db", 0),
    )
    return f"the Redis server at redis://{host}:{port}/{db}"


class RedisStore:
    """The Store protocol on one Redis server, under one namespace.

    Give it a `redis.asyncio.Redis` client that returns bytes (the default; not
    `decode_responses=True`), or open one with `RedisStore.from_url`. Close it with
    `await store.close()` or use it as an async context manager; it closes the client only
    if it opened it.

    `put_many`, `push`, `ack` and `renew` send their arguments in batches of 2000, each
    batch one atomic script, so one huge call never stalls the server for everyone else.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        namespace: str = "burla",
        clock: Clock | None = None,
        owns_client: bool = False,
    ) -> None:
        _check_namespace(namespace)
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise InvalidRequestError(
                "the Redis client for a RedisStore decodes responses to str, but queue items "
                "are bytes: create the client without decode_responses=True"
            )
        self._client = client
        self._owns_client = owns_client
        self._closed = False
        self._clock = clock
        self._where = _describe(client)
        self.namespace = namespace
        self._prefix = f"burla:{{{namespace}}}:".encode()
        self._document_keys = [self._prefix + b"docs", self._prefix + b"keys"]
        self._put = client.register_script(scripts.PUT)
        self._put_many = client.register_script(scripts.PUT_MANY)
        self._delete = client.register_script(scripts.DELETE)
        self._list = client.register_script(scripts.LIST)
        self._push = client.register_script(scripts.PUSH)
        self._claim = client.register_script(scripts.CLAIM)
        self._ack = client.register_script(scripts.ACK)
        self._renew = client.register_script(scripts.RENEW)

    @classmethod
    def from_url(
        cls, url: str, *, namespace: str = "burla", clock: Clock | None = None
    ) -> RedisStore:
        """A store on the server at `url` (`redis://[:password@]host:port/db`, `rediss://...`
        or `unix:///path/to/socket`); it opens and closes its own client.

        A server that does not answer fails a call after a while instead of hanging it; the
        URL's own `?socket_timeout=...&socket_connect_timeout=...` override these.
        """
        _check_namespace(namespace)  # before a client exists that would need closing
        try:
            client = aioredis.Redis.from_url(
                url, socket_connect_timeout=_CONNECT_TIMEOUT_S, socket_timeout=_REPLY_TIMEOUT_S
            )
        except ValueError as error:
            raise InvalidRequestError(
                f"{url!r} is not a Redis URL ({error}); use redis://HOST:PORT/DB"
            ) from None
        return cls(client, namespace=namespace, clock=clock, owns_client=True)

    async def close(self) -> None:
        """Stop using the server; later calls raise BackendError. Closing twice is fine."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # Documents

    async def get(self, key: str) -> Document | None:
        name = _utf8(key, "document key")
        with self._translated(f"reading document {key!r}"):
            # The client returns bytes: __init__ refused one that decodes responses.
            stored = cast("bytes | None", await self._client.hget(self._document_keys[0], name))
        return None if stored is None else self._document(key, stored)

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        payload = _JSON.encode(key, data).encode("ascii")
        expected = "" if if_version is None else str(int(if_version))
        with self._translated(f"writing document {key!r}"):
            written, version = await self._put(
                keys=self._document_keys, args=[_utf8(key, "document key"), payload, expected]
            )
        if not written:
            check_version(key, if_version, version or None)
        return Document(key, _JSON.decode(payload.decode("ascii")), int(version))

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        encoded: list[bytes] = []
        for key, data in docs.items():
            encoded += [_utf8(key, "document key"), _JSON.encode(key, data).encode("ascii")]
        written: set[str] = set()
        for chunk in _chunks(encoded, 2 * _BATCH):
            with self._translated(f"writing {len(chunk) // 2} documents"):
                keys = await self._put_many(
                    keys=self._document_keys, args=[b"1" if create_only else b"0", *chunk]
                )
            written.update(key.decode() for key in keys)
        return written

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        check_if_version(key, if_version)
        expected = "" if if_version is None else str(int(if_version))
        with self._translated(f"deleting document {key!r}"):
            outcome, version = await self._delete(
                keys=self._document_keys, args=[_utf8(key, "document key"), expected]
            )
        if outcome < 0:
            check_version(key, if_version, version)
        return bool(outcome)

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:  # plain `list` here would name this method
        check_limit(limit)
        start, past = _utf8(prefix, "prefix"), _utf8(after, "`after` key")
        if limit == 0:
            return []
        lower = b"(" + past if past >= start else b"[" + start
        above = _after_prefix(start)
        upper = b"+" if above is None else b"(" + above
        with self._translated(f"listing documents under {prefix!r}"):
            found = await self._list(
                keys=self._document_keys, args=[lower, upper, min(limit, _MOST)]
            )
        return [self._document(found[i].decode(), found[i + 1]) for i in range(0, len(found), 2)]

    # Queues

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        keys = self._queue_keys(queue)
        args: list[bytes] = []
        for item_id, data in items:
            check_item_data(queue, item_id, data)
            args += [_utf8(item_id, f"queue {queue!r} item id"), data]
        push_keys = [keys[0], keys[1], keys[5], self._counter_key(queue)]
        for chunk in _chunks(args, 2 * _BATCH):
            with self._translated(f"pushing {len(chunk) // 2} items to queue {queue!r}"):
                await self._push(keys=push_keys, args=chunk)

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        keys = self._queue_keys(queue)
        check_limit(limit)
        check_lease(lease_s)
        if limit == 0:
            return []
        token = f"{uuid.uuid4().hex}-"
        with self._translated(f"claiming items from queue {queue!r}"):
            reply = await self._claim(
                keys=keys,
                args=[min(limit, _MOST) - 1, repr(float(lease_s)), self._reading(), token],
            )
        expires = float(reply[0])
        return [
            Claim(reply[i].decode(), reply[i + 1], reply[i + 2].decode(), reply[i + 3], expires)
            for i in range(1, len(reply), 4)
        ]

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        keys = [*self._queue_keys(queue), self._counter_key(queue)]
        acked: set[str] = set()
        for chunk in _chunks(self._receipts(receipts)):
            with self._translated(f"acking {len(chunk)} items of queue {queue!r}"):
                done = await self._ack(keys=keys, args=chunk)
            acked.update(receipt.decode() for receipt in done)
        return acked

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        keys = self._queue_keys(queue)
        check_lease(lease_s)
        renewed: set[str] = set()
        for chunk in _chunks(self._receipts(receipts)):
            with self._translated(f"renewing {len(chunk)} leases in queue {queue!r}"):
                done = await self._renew(
                    keys=keys, args=[repr(float(lease_s)), self._reading(), *chunk]
                )
            renewed.update(receipt.decode() for receipt in done)
        return renewed

    # Keys, time and errors

    def _queue_keys(self, queue: str) -> builtins.list[bytes]:
        name = _utf8(queue, "queue name")
        return [self._prefix + f"q:{part}:".encode() + name for part in scripts.QUEUE_PARTS]

    def _counter_key(self, queue: str) -> bytes:
        return self._prefix + b"q:counter:" + _utf8(queue, "queue name")

    @staticmethod
    def _receipts(receipts: Sequence[str]) -> builtins.list[bytes]:
        """The receipts worth looking up: one that is not ASCII text was never handed out."""
        return [
            receipt.encode("ascii")
            for receipt in receipts
            if isinstance(receipt, str) and receipt.isascii()
        ]

    def _reading(self) -> str:
        """The store's clock reading for a script, or '' to use the server's clock."""
        return "" if self._clock is None else repr(float(self._clock.now()))

    def _document(self, key: str, stored: bytes) -> Document:
        version, _, payload = stored.partition(b" ")
        try:
            return Document(key, _JSON.decode(payload.decode("ascii")), int(version))
        except (ValueError, TypeError) as error:  # not written by a RedisStore
            raise BackendError(
                f"document {key!r} in namespace {self.namespace!r} of {self._where} cannot be "
                f"read ({error}); it was not written by a RedisStore: delete it and write it "
                "again"
            ) from None

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Redis's errors as burla's, saying what failed, where, and what to do."""
        if self._closed:
            raise BackendError(
                f"{action} failed: this RedisStore on {self._where} is closed; open a new one"
            )
        try:
            yield
        except redis_errors.AuthenticationError as error:
            raise BackendError(
                f"{action} failed: {self._where} refused the credentials ({error}); put the "
                "right user and password in the Redis URL"
            ) from error
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as error:
            raise TransientBackendError(
                f"{action} failed: cannot reach {self._where} ({error}); check that "
                "redis-server is running there and that the URL is right, then retry"
            ) from error
        except redis_errors.OutOfMemoryError as error:
            raise BackendError(
                f"{action} failed: {self._where} is out of memory ({error}); raise its "
                "maxmemory or delete what old clusters left there"
            ) from error
        except redis_errors.ReadOnlyError as error:
            raise BackendError(
                f"{action} failed: {self._where} is a read-only replica ({error}); point the "
                "store at the primary"
            ) from error
        except redis_errors.RedisError as error:
            raise BackendError(
                f"{action} failed: {self._where} said {error}; check the server's log, then retry"
            ) from error
