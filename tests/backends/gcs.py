"""GcsBlobStores on gcp-storage-emulator, and signed-URL transfers over HTTP checked first
as Cloud Storage checks them (the emulator serves signed URLs unchecked)."""

from __future__ import annotations

import time
import uuid
from typing import Literal

from burla.backends.gcp.gcs_blobs import GcsBlobStore
from tests.components.gcs import GcsEmulator, check_signed_url, transfer_through
from tests.contract.blobstore import Transfer


class SkewedClock:
    """The wall clock, moved forward by `advance`: what Cloud Storage's checks read."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def fresh_store(emulator: GcsEmulator, **options: object) -> GcsBlobStore:
    """A store in a namespace of its own, so every test starts empty."""
    options.setdefault("namespace", f"test-{uuid.uuid4().hex}")
    options.setdefault("client", emulator.client)
    options.setdefault("signing_credentials", emulator.signer)
    return GcsBlobStore(emulator.bucket, **options)  # type: ignore[arg-type]


def http_transfer(emulator: GcsEmulator, clock: SkewedClock) -> Transfer:
    """Signed URLs checked (V4 signature for the method used, expiry on `clock`), then
    sent over HTTP to the emulator."""

    def check(url: str, method: Literal["GET", "PUT"]) -> None:
        check_signed_url(url, method, emulator.public_key, clock.now())

    async def transfer(url: str, method: Literal["GET", "PUT"], data: bytes | None) -> bytes | None:
        return await transfer_through(url, method, data, check)

    return transfer
