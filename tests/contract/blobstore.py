"""BlobStoreContract: what every BlobStore backend must do.

A backend binds it with one fixture, `blobs_under_test`, that gives a BlobsUnderTest, and
one class line: `class TestDirectoryBlobStore(BlobStoreContract): ...`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import pytest

from burla.core.errors import NotFoundError, SignedUrlError
from burla.core.protocols import BlobStore
from tests.contract.clocks import Advance, DrivenClock, advancer

Transfer = Callable[[str, Literal["GET", "PUT"], bytes | None], Awaitable[bytes | None]]


@dataclass(frozen=True)
class BlobsUnderTest:
    blobs: BlobStore
    """A fresh, empty blob store."""
    transfer: Transfer
    """What an HTTP client does with a signed URL: GET returns the body, PUT sends the
    data and returns None; either raises SignedUrlError when the server refuses the URL."""
    clock: DrivenClock | None = None
    """The clock that signed URLs expire on, when the test drives it; None for real time."""


class SelfSigning(Protocol):
    """A blob store that checks its own signed URLs, standing in for an HTTP server."""

    async def get_signed(self, url: str) -> bytes: ...

    async def put_signed(self, url: str, data: bytes) -> None: ...


def self_signed_transfer(blobs: SelfSigning) -> Transfer:
    """The transfer of a store that honours its own URLs."""

    async def transfer(url: str, method: Literal["GET", "PUT"], data: bytes | None) -> bytes | None:
        if method == "GET":
            return await blobs.get_signed(url)
        await blobs.put_signed(url, data or b"")
        return None

    return transfer


@pytest.mark.anyio
class BlobStoreContract:
    @pytest.fixture
    def blobs(self, blobs_under_test: BlobsUnderTest) -> BlobStore:
        return blobs_under_test.blobs

    @pytest.fixture
    def transfer(self, blobs_under_test: BlobsUnderTest) -> Transfer:
        return blobs_under_test.transfer

    @pytest.fixture
    def advance(self, blobs_under_test: BlobsUnderTest) -> Advance:
        return advancer(blobs_under_test.clock)

    async def test_put_get(self, blobs: BlobStore) -> None:
        await blobs.put("funcs/f.pkl", b"\x00\x01pickled")
        assert await blobs.get("funcs/f.pkl") == b"\x00\x01pickled"

    async def test_empty_blob(self, blobs: BlobStore) -> None:
        await blobs.put("empty", b"")
        assert await blobs.get("empty") == b""

    async def test_overwrite(self, blobs: BlobStore) -> None:
        await blobs.put("k", b"old")
        await blobs.put("k", b"new")
        assert await blobs.get("k") == b"new"

    async def test_get_missing_raises_not_found(self, blobs: BlobStore) -> None:
        with pytest.raises(NotFoundError, match="missing/blob"):
            await blobs.get("missing/blob")

    async def test_list_prefix_sorted(self, blobs: BlobStore) -> None:
        for key in ["jobs/2/b", "jobs/1/a", "nodes/x", "jobs/10/c", "jobsx", "jobs/1/b"]:
            await blobs.put(key, key.encode())
        assert await blobs.list("jobs/") == ["jobs/1/a", "jobs/1/b", "jobs/10/c", "jobs/2/b"]
        assert await blobs.list("jobs/1/") == ["jobs/1/a", "jobs/1/b"]
        assert await blobs.list("absent/") == []

    async def test_delete_prefix(self, blobs: BlobStore) -> None:
        for key in ["jobs/1/a", "jobs/1/b", "jobs/10/c", "jobs/2/a"]:
            await blobs.put(key, b"x")
        assert await blobs.delete_prefix("jobs/1/") == 2
        assert await blobs.list("jobs/") == ["jobs/10/c", "jobs/2/a"]
        with pytest.raises(NotFoundError):
            await blobs.get("jobs/1/a")
        assert await blobs.delete_prefix("jobs/1/") == 0
        assert await blobs.get("jobs/10/c") == b"x"

    async def test_signed_put_then_get(self, blobs: BlobStore, transfer: Transfer) -> None:
        url = await blobs.signed_url("inputs/0.pkl", method="PUT", expires_s=60)
        assert await transfer(url, "PUT", b"uploaded") is None
        assert await blobs.get("inputs/0.pkl") == b"uploaded"

    async def test_signed_get(self, blobs: BlobStore, transfer: Transfer) -> None:
        await blobs.put("results/0.pkl", b"result bytes")
        url = await blobs.signed_url("results/0.pkl", method="GET", expires_s=60)
        assert await transfer(url, "GET", None) == b"result bytes"

    async def test_expired_url_is_refused(
        self, blobs: BlobStore, transfer: Transfer, advance: Advance
    ) -> None:
        await blobs.put("k", b"secret")
        url = await blobs.signed_url("k", method="GET", expires_s=1)
        await advance(2)
        with pytest.raises(SignedUrlError):
            await transfer(url, "GET", None)

    async def test_url_for_another_key_is_refused(
        self, blobs: BlobStore, transfer: Transfer
    ) -> None:
        await blobs.put("tamper/original.bin", b"mine")
        await blobs.put("tamper/stolen.bin", b"theirs")
        url = await blobs.signed_url("tamper/original.bin", method="GET", expires_s=60)
        assert "original" in url
        with pytest.raises(SignedUrlError):
            await transfer(url.replace("original", "stolen"), "GET", None)
        put_url = await blobs.signed_url("tamper/original.bin", method="PUT", expires_s=60)
        with pytest.raises(SignedUrlError):
            await transfer(put_url.replace("original", "stolen"), "PUT", b"overwritten")
        assert await blobs.get("tamper/stolen.bin") == b"theirs"

    async def test_get_url_cannot_put(self, blobs: BlobStore, transfer: Transfer) -> None:
        await blobs.put("k", b"original")
        url = await blobs.signed_url("k", method="GET", expires_s=60)
        with pytest.raises(SignedUrlError):
            await transfer(url, "PUT", b"overwritten")
        assert await blobs.get("k") == b"original"

    async def test_odd_keys_keep_their_bytes_through_signed_urls(
        self, blobs: BlobStore, transfer: Transfer
    ) -> None:
        keys = [
            "dir/a file?with&odd=chars#",
            "dir/a file?with&odd=chars#%20\u00e9",
            "dir/h\u00e9llo \U0001f600",
            "dir/%41+b",
            "dir/~x",
        ]
        for key in keys:
            url = await blobs.signed_url(key, method="PUT", expires_s=60)
            assert await transfer(url, "PUT", key.encode()) is None
        assert await blobs.list("dir/") == sorted(keys)
        for key in keys:
            assert await blobs.get(key) == key.encode()
            url = await blobs.signed_url(key, method="GET", expires_s=60)
            assert await transfer(url, "GET", None) == key.encode()
