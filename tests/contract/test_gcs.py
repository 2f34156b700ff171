"""The BlobStore contract bound to GcsBlobStore on gcp-storage-emulator; signed URLs
travel over HTTP, checked first as Cloud Storage does (tests/backends/gcs.py)."""

from __future__ import annotations

import pytest

from tests.backends.gcs import SkewedClock, fresh_store, http_transfer
from tests.components.gcs import GcsEmulator
from tests.contract.blobstore import BlobStoreContract, BlobsUnderTest

pytestmark = pytest.mark.integration


@pytest.fixture
def blobs_under_test(gcs_emulator: GcsEmulator) -> BlobsUnderTest:
    clock = SkewedClock()
    transfer = http_transfer(gcs_emulator, clock)
    return BlobsUnderTest(fresh_store(gcs_emulator), transfer, clock=clock)


class TestGcsBlobStore(BlobStoreContract): ...
