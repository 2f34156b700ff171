"""The Store contract bound to RedisStore on a real redis-server and on fakeredis, and what
only the Redis store must do."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import fakeredis
import pytest
import redis.asyncio as aioredis

from burla.backends.redis import RedisStore
from burla.core.clock import ManualClock
from burla.core.errors import (
    BackendError,
    ConflictError,
    InvalidRequestError,
    TransientBackendError,
)
from tests.components.redis import RedisServer, free_loopback_port
from tests.contract.store import Advance, StoreContract


def _namespace() -> str:
    """A namespace no other test uses, so tests share one server without seeing each other."""
    return f"test-{uuid.uuid4().hex}"


class TestRedisStore(StoreContract):
    @pytest.fixture
    async def store(
        self, anyio_backend: str, redis_server: RedisServer
    ) -> AsyncIterator[RedisStore]:
        async with RedisStore.from_url(redis_server.url, namespace=_namespace()) as store:
            yield store

    @pytest.fixture
    def advance(self) -> Advance:
        async def advance(seconds: float) -> None:
            await anyio.sleep(seconds)  # leases run on the Redis server's clock

        return advance


class TestRedisStoreOnFakeredis(StoreContract):
    @pytest.fixture
    def clock(self) -> ManualClock:
        return ManualClock(start=1_000_000.0)

    @pytest.fixture
    async def store(self, anyio_backend: str, clock: ManualClock) -> AsyncIterator[RedisStore]:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        try:
            yield RedisStore(client, namespace=_namespace(), clock=clock)
        finally:
            await client.aclose()

    @pytest.fixture
    def advance(self, clock: ManualClock) -> Advance:
        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        return advance


# What only the Redis store must do, on the real server.


@pytest.fixture
async def client(anyio_backend: str, redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A raw client of the test server, to look at what the store leaves there."""
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        yield raw
    finally:
        await raw.aclose()


def _keys_of(namespace: str) -> str:
    return f"burla:{{{namespace}}}:*"


@pytest.mark.anyio
class TestRedisStoreOnly:
    async def test_namespaces_do_not_see_each_other(self, redis_server: RedisServer) -> None:
        async with (
            RedisStore.from_url(redis_server.url, namespace=_namespace()) as one,
            RedisStore.from_url(redis_server.url, namespace=_namespace()) as two,
        ):
            await one.put("jobs/1", {"owner": "one"})
            assert await two.get("jobs/1") is None
            assert await two.list("") == []
            await two.put("jobs/1", {"owner": "two"}, if_version=0)
            read = await one.get("jobs/1")
            assert read is not None
            assert (read.data, read.version) == ({"owner": "one"}, 1)
            await one.push("q", [("a", b"one")])
            assert await two.claim("q", limit=10, lease_s=60) == []
            [claim] = await one.claim("q", limit=10, lease_s=60)
            assert await two.ack("q", [claim.receipt]) == set()
            assert await two.delete("jobs/1") is True
            assert await one.get("jobs/1") is not None

    async def test_many_clients_claim_each_item_exactly_once(
        self, redis_server: RedisServer
    ) -> None:
        namespace = _namespace()
        ids = [f"item-{n:04d}" for n in range(600)]
        stores = [RedisStore.from_url(redis_server.url, namespace=namespace) for _ in range(6)]
        claimed: list[str] = []

        async def claimer(store: RedisStore) -> None:
            while claims := await store.claim("q", limit=4, lease_s=60):
                assert claims == sorted(claims, key=lambda claim: claim.item_id)
                claimed.extend(claim.item_id for claim in claims)
                await anyio.lowlevel.checkpoint()
                assert await store.ack("q", [claim.receipt for claim in claims]) == {
                    claim.receipt for claim in claims
                }

        try:
            await stores[0].push("q", [(item_id, item_id.encode()) for item_id in ids])
            async with anyio.create_task_group() as group:
                for store in stores:
                    for _ in range(4):
                        group.start_soon(claimer, store)
        finally:
            for store in stores:
                await store.close()
        assert Counter(claimed) == Counter(ids)

    async def test_values_round_trip_exactly(self, redis_server: RedisServer) -> None:
        data = {
            "raw": bytes(range(256)),
            "empty": b"",
            "$b": "a field, not a tag",
            "$d": [["a", 1]],
            "looks_like_bytes": {"$b": "AAAA"},
            "looks_like_a_dict": {"$d": [["x", b"\xff"]]},
            "text": "h\u00e9llo \U0001f600 \ud800",
            "numbers": [2**100, -0.0, 1e-310, 0.1 + 0.2, 1.0, 1, math.inf, -math.inf],
            "nested": [{"$": {"$$": [b"\x00"]}}, [], {}],
        }
        async with RedisStore.from_url(redis_server.url, namespace=_namespace()) as store:
            assert (await store.put("k", data)).data == data
            read = await store.get("k")
            assert read is not None
            assert read.data == data
            assert [type(value) for value in read.data["numbers"][4:6]] == [float, int]
            assert isinstance(read.data["looks_like_bytes"], dict)
            assert await store.put_many({"m": data}) == {"m"}
            [listed] = await store.list("m")
            assert listed.data == data

    async def test_invalid_documents_write_nothing(self, redis_server: RedisServer) -> None:
        async with RedisStore.from_url(redis_server.url, namespace=_namespace()) as store:
            with pytest.raises(InvalidRequestError, match=r"document 'k'\.when is a tuple"):
                await store.put("k", {"when": (1, 2)})
            with pytest.raises(InvalidRequestError, match="'b'"):
                await store.put_many({"a": {"n": 1}, "b": {"n": {1, 2}}})
            with pytest.raises(InvalidRequestError, match="UTF-8"):
                await store.put("\ud800", {})
            with pytest.raises(InvalidRequestError, match="bytes"):
                await store.push("q", [("a", b"a"), ("b", "not bytes")])  # type: ignore[list-item]
            with pytest.raises(InvalidRequestError, match="if_version=-1"):
                await store.put("k", {}, if_version=-1)
            assert await store.list("") == []
            assert await store.claim("q", limit=10, lease_s=60) == []

    async def test_a_drained_queue_leaves_no_keys(
        self, redis_server: RedisServer, client: aioredis.Redis
    ) -> None:
        namespace = _namespace()
        async with RedisStore.from_url(redis_server.url, namespace=namespace) as store:
            await store.push("q", [(f"{n}", b"x") for n in range(5000)])
            await store.put("k", {})
            while claims := await store.claim("q", limit=1500, lease_s=60):
                await store.ack("q", [claim.receipt for claim in claims])
            await store.delete("k")
            assert await client.keys(_keys_of(namespace)) == []
            await store.push("q", [("again", b"y")])
            [claim] = await store.claim("q", limit=10, lease_s=60)
            assert (claim.item_id, claim.data, claim.deliveries) == ("again", b"y", 1)

    async def test_calls_larger_than_one_batch(self, redis_server: RedisServer) -> None:
        ids = [f"{n:05d}" for n in range(4500)]
        async with RedisStore.from_url(redis_server.url, namespace=_namespace()) as store:
            await store.push("q", [(item_id, item_id.encode()) for item_id in ids])
            first = await store.claim("q", limit=len(ids), lease_s=60)
            assert [claim.item_id for claim in first] == ids
            receipts = [claim.receipt for claim in first]
            assert await store.renew("q", receipts, lease_s=0) == set(receipts)
            again = await store.claim("q", limit=len(ids), lease_s=60)
            assert [(claim.item_id, claim.deliveries) for claim in again] == [
                (item_id, 2) for item_id in ids
            ]
            assert await store.ack("q", receipts) == set()
            assert await store.ack("q", [claim.receipt for claim in again]) == {
                claim.receipt for claim in again
            }
            docs = {f"d/{item_id}": {"n": n} for n, item_id in enumerate(ids)}
            assert await store.put_many(docs) == set(docs)
            assert await store.put_many(docs, create_only=True) == set()
            listed = await store.list("d/", limit=10_000)
            assert [(doc.key, doc.data) for doc in listed] == list(docs.items())

    async def test_leases_run_on_the_servers_clock(
        self, redis_server: RedisServer, client: aioredis.Redis
    ) -> None:
        async with RedisStore.from_url(redis_server.url, namespace=_namespace()) as store:
            await store.push("q", [("a", b"a")])
            seconds, micros = await client.time()
            [claim] = await store.claim("q", limit=1, lease_s=60)
            assert 60 <= claim.lease_expires - (seconds + micros / 1e6) < 60 + 30

    async def test_scripts_are_sent_again_after_the_server_forgets_them(
        self, redis_server: RedisServer, client: aioredis.Redis
    ) -> None:
        async with RedisStore.from_url(redis_server.url, namespace=_namespace()) as store:
            await store.put("k", {"n": 1})
            await client.script_flush()
            assert (await store.put("k", {"n": 2}, if_version=1)).version == 2
            with pytest.raises(ConflictError, match="'k'"):
                await store.put("k", {"n": 3}, if_version=1)

    async def test_a_document_it_did_not_write_is_reported(
        self, redis_server: RedisServer, client: aioredis.Redis
    ) -> None:
        namespace = _namespace()
        async with RedisStore.from_url(redis_server.url, namespace=namespace) as store:
            await client.hset(f"burla:{{{namespace}}}:docs", "k", "not a document")
            with pytest.raises(BackendError, match="not written by a RedisStore"):
                await store.get("k")

    async def test_an_unreachable_server_is_a_backend_error(self) -> None:
        url = f"redis://127.0.0.1:{free_loopback_port()}/0"
        async with RedisStore.from_url(url, namespace=_namespace()) as store:
            with pytest.raises(
                TransientBackendError, match="cannot reach the Redis server at redis://"
            ):
                await store.get("k")

    async def test_closed_store_refuses_calls(self, redis_server: RedisServer) -> None:
        store = RedisStore.from_url(redis_server.url, namespace=_namespace())
        await store.close()
        await store.close()
        with pytest.raises(BackendError, match="closed"):
            await store.get("k")

    async def test_bad_namespaces_and_clients_are_refused(self, redis_server: RedisServer) -> None:
        for namespace in ["", "a:b", "a}b", "x" * 101]:
            with pytest.raises(InvalidRequestError, match="namespace"):
                RedisStore.from_url(redis_server.url, namespace=namespace)
        decoding = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            with pytest.raises(InvalidRequestError, match="decode_responses"):
                RedisStore(decoding)
        finally:
            await decoding.aclose()
        with pytest.raises(InvalidRequestError, match="not a Redis URL"):
            RedisStore.from_url("http://127.0.0.1/", namespace="x")
