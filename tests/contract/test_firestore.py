"""The Store contract bound to FirestoreStore on the official emulator."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from burla.backends.gcp.firestore_store import FirestoreStore
from tests.components.firestore import FirestoreEmulator
from tests.contract.store import StoreContract, StoreUnderTest

pytestmark = pytest.mark.integration


@pytest.fixture
async def store_under_test(
    anyio_backend: str, firestore_emulator: FirestoreEmulator
) -> AsyncIterator[StoreUnderTest]:
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    async with AsyncExitStack() as opened:

        def connect() -> FirestoreStore:  # a client of its own: its own connection
            client = firestore_emulator.client()
            store = FirestoreStore(firestore_emulator.project, namespace, client=client)
            opened.push_async_callback(store.close)
            return store

        yield StoreUnderTest(connect(), connect)  # the store reads the wall clock


class TestFirestoreStore(StoreContract): ...
