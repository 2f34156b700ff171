"""The contract suites bound to the local backend's SqliteStore and DirectoryBlobStore."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from burla.backends.local.blobs import DirectoryBlobStore
from burla.backends.local.store import SqliteStore
from burla.core.clock import ManualClock
from tests.contract.blobstore import BlobStoreContract, BlobsUnderTest, self_signed_transfer
from tests.contract.store import StoreContract, StoreUnderTest


@pytest.fixture
def store_under_test(tmp_path: Path) -> Iterator[StoreUnderTest]:
    path = tmp_path / "store.db"
    with ExitStack() as opened:  # the store reads the wall clock, as in a real cluster
        store = opened.enter_context(SqliteStore(path))
        yield StoreUnderTest(store, connect=lambda: opened.enter_context(SqliteStore(path)))


@pytest.fixture
def blobs_under_test(tmp_path: Path, clock: ManualClock) -> BlobsUnderTest:
    blobs = DirectoryBlobStore(tmp_path / "blobs", b"local-test-secret", clock)
    return BlobsUnderTest(blobs, self_signed_transfer(blobs), clock=clock)


class TestSqliteStore(StoreContract): ...


class TestDirectoryBlobStore(BlobStoreContract): ...
