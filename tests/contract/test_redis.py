"""The Store contract bound to RedisStore on a real redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from burla.backends.redis import RedisStore
from tests.components.redis import RedisServer
from tests.contract.store import StoreContract, StoreUnderTest


@pytest.fixture
async def store_under_test(
    anyio_backend: str, redis_server: RedisServer
) -> AsyncIterator[StoreUnderTest]:
    namespace = f"test-{uuid.uuid4().hex}"  # tests share the server without seeing each other
    async with AsyncExitStack() as opened:

        def connect() -> RedisStore:
            store = RedisStore.from_url(redis_server.url, namespace=namespace)
            opened.push_async_callback(store.close)
            return store

        yield StoreUnderTest(connect(), connect)  # leases run on the Redis server's clock


class TestRedisStore(StoreContract): ...
