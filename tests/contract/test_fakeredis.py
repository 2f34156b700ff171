"""The Store contract bound to RedisStore on fakeredis, whose clock the tests drive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import fakeredis
import pytest

from burla.backends.redis import RedisStore
from burla.core.clock import ManualClock
from tests.contract.store import StoreContract, StoreUnderTest


@pytest.fixture
async def store_under_test(anyio_backend: str, clock: ManualClock) -> AsyncIterator[StoreUnderTest]:
    server = fakeredis.FakeServer()
    async with AsyncExitStack() as opened:

        def connect() -> RedisStore:
            client = fakeredis.FakeAsyncRedis(server=server)
            opened.push_async_callback(client.aclose)
            return RedisStore(client, namespace="test", clock=clock)

        yield StoreUnderTest(connect(), connect, clock=clock)


class TestRedisStoreOnFakeredis(StoreContract): ...
