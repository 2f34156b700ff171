"""What only the Redis store does, on a real redis-server: namespaces, its encoding, calls
larger than one script's batch, leases on the server's clock, scripts the server forgot,
and what it says of foreign data, an unreachable server and bad arguments."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from burla.backends.redis import RedisStore
from burla.core.errors import (
    BackendError,
    ConflictError,
    InvalidRequestError,
    TransientBackendError,
)
from tests.components.redis import RedisServer, free_loopback_port


def _namespace() -> str:
    """A namespace no other test uses, so tests share one server without seeing each other."""
    return f"test-{uuid.uuid4().hex}"


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

    async def test_lone_surrogates_and_infinities_round_trip(
        self, redis_server: RedisServer
    ) -> None:
        data = {"text": "h\u00e9llo \U0001f600 \ud800", "numbers": [math.inf, -math.inf]}
        async with RedisStore.from_url(redis_server.url, namespace=_namespace()) as store:
            assert (await store.put("k", data)).data == data
            read = await store.get("k")
            assert read is not None
            assert read.data == data
            assert await store.put_many({"m": data}) == {"m"}
            [listed] = await store.list("m")
            assert listed.data == data

    async def test_a_key_that_is_not_utf8_is_refused(self, redis_server: RedisServer) -> None:
        async with RedisStore.from_url(redis_server.url, namespace=_namespace()) as store:
            with pytest.raises(InvalidRequestError, match="UTF-8"):
                await store.put("\ud800", {})
            assert await store.list("") == []

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
