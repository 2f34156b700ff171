"""What only the Cloud Storage blob store does, on gcp-storage-emulator: its V4 signed
URLs, namespaces in one bucket, large blobs, the keys and data it refuses, and what it says
of a missing bucket, an unreachable endpoint and missing signing credentials."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from burla.backends.gcp.gcs_blobs import GcsBlobStore
from burla.core.errors import BackendError, InvalidRequestError, NotFoundError, SignedUrlError
from tests.backends.gcs import SkewedClock, fresh_store, http_transfer
from tests.components.gcs import (
    SERVICE_ACCOUNT,
    GcsEmulator,
    check_signed_url,
    emulator_client,
)

pytestmark = pytest.mark.integration


@pytest.mark.anyio
class TestGcsOnly:
    async def test_signed_url_is_v4_for_one_object_method_and_lifetime(
        self,
        gcs_emulator: GcsEmulator,
    ) -> None:
        blobs = fresh_store(gcs_emulator, namespace="cluster-1")
        url = await blobs.signed_url("uploads/job-7/0", method="PUT", expires_s=59.2)
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == gcs_emulator.url
        assert unquote(parts.path) == f"/{gcs_emulator.bucket}/cluster-1/uploads/job-7/0"
        query = {name: value for name, [value] in parse_qs(parts.query).items()}
        assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
        assert query["X-Goog-Expires"] == "60"  # whole seconds, rounded up
        assert query["X-Goog-Credential"].startswith(f"{SERVICE_ACCOUNT}/")
        assert query["X-Goog-SignedHeaders"] == "host"
        now = time.time()
        check_signed_url(url, "PUT", gcs_emulator.public_key, now)
        with pytest.raises(SignedUrlError, match="signature"):
            check_signed_url(url, "GET", gcs_emulator.public_key, now)
        with pytest.raises(SignedUrlError, match="expired"):
            check_signed_url(url, "PUT", gcs_emulator.public_key, now + 61)

    @pytest.mark.parametrize("expires_s", [0, -5, float("nan"), 7 * 24 * 3600 + 1])
    async def test_lifetime_out_of_range_is_refused(
        self,
        gcs_emulator: GcsEmulator,
        expires_s: float,
    ) -> None:
        blobs = fresh_store(gcs_emulator)
        with pytest.raises(InvalidRequestError, match="expires_s"):
            await blobs.signed_url("k", method="GET", expires_s=expires_s)

    async def test_signed_url_for_another_method_is_refused(
        self,
        gcs_emulator: GcsEmulator,
    ) -> None:
        blobs = fresh_store(gcs_emulator)
        with pytest.raises(InvalidRequestError, match="DELETE"):
            await blobs.signed_url("k", method="DELETE", expires_s=60)  # type: ignore[arg-type]

    async def test_large_blob_round_trips(self, gcs_emulator: GcsEmulator) -> None:
        blobs = fresh_store(gcs_emulator)
        data = os.urandom(20 * 1024 * 1024)
        await blobs.put("big/direct", data)
        assert await blobs.get("big/direct") == data
        transfer = http_transfer(gcs_emulator, SkewedClock())
        put_url = await blobs.signed_url("big/signed", method="PUT", expires_s=600)
        await transfer(put_url, "PUT", data)
        get_url = await blobs.signed_url("big/signed", method="GET", expires_s=600)
        assert await transfer(get_url, "GET", None) == data

    async def test_namespaces_are_isolated(self, gcs_emulator: GcsEmulator) -> None:
        space = uuid.uuid4().hex
        one = fresh_store(gcs_emulator, namespace=f"{space}/one")
        two = fresh_store(gcs_emulator, namespace=f"{space}/one-too/")
        await one.put("jobs/1/fn", b"one")
        await two.put("jobs/1/fn", b"two")
        assert (await one.get("jobs/1/fn"), await two.get("jobs/1/fn")) == (b"one", b"two")
        assert await one.list("") == ["jobs/1/fn"]
        assert await one.delete_prefix("") == 1
        assert await two.list("jobs/") == ["jobs/1/fn"]
        whole_bucket = fresh_store(gcs_emulator, namespace="")
        assert await whole_bucket.list(f"{space}/") == [f"{space}/one-too/jobs/1/fn"]

    async def test_delete_prefix_counts_many_blobs(self, gcs_emulator: GcsEmulator) -> None:
        blobs = fresh_store(gcs_emulator)
        for n in range(40):
            await blobs.put(f"jobs/1/inputs/{n:03d}", b"x")
        await blobs.put("jobs/2/fn", b"x")
        assert await blobs.delete_prefix("jobs/1/") == 40
        assert await blobs.list("") == ["jobs/2/fn"]

    @pytest.mark.parametrize(
        ("key", "problem"),
        [("", "empty"), ("a\nb", "line break"), ("a" * 1025, "longer than"), (b"k", "bytes")],
    )
    async def test_bad_keys_are_refused(
        self,
        gcs_emulator: GcsEmulator,
        key: object,
        problem: str,
    ) -> None:
        blobs = fresh_store(gcs_emulator)
        with pytest.raises(InvalidRequestError, match=problem):
            await blobs.put(key, b"x")  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match=problem):
            await blobs.signed_url(key, method="GET", expires_s=60)  # type: ignore[arg-type]
        assert await blobs.list("") == []

    async def test_data_must_be_bytes(self, gcs_emulator: GcsEmulator) -> None:
        blobs = fresh_store(gcs_emulator)
        with pytest.raises(InvalidRequestError, match="not bytes"):
            await blobs.put("k", "text")  # type: ignore[arg-type]
        await blobs.put("k", bytearray(b"ok"))  # type: ignore[arg-type]
        assert await blobs.get("k") == b"ok"

    async def test_missing_bucket_is_a_clear_backend_error(
        self,
        gcs_emulator: GcsEmulator,
    ) -> None:
        blobs = GcsBlobStore("no-such-bucket", client=gcs_emulator.client)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: blobs.put("k", b"x"),
            lambda: blobs.get("k"),
            lambda: blobs.list(""),
            lambda: blobs.delete_prefix(""),
        ]
        for call in calls:
            with pytest.raises(BackendError, match="gs://no-such-bucket does not exist") as raised:
                await call()
            assert not isinstance(raised.value, NotFoundError)

    async def test_store_builds_its_client_from_the_environment(
        self,
        gcs_emulator: GcsEmulator,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
        blobs = GcsBlobStore(gcs_emulator.bucket, namespace=f"env-{uuid.uuid4().hex}")
        monkeypatch.delenv("STORAGE_EMULATOR_HOST")
        await blobs.put("k", b"from the environment")
        assert await blobs.get("k") == b"from the environment"

    async def test_unreachable_endpoint_is_a_clear_backend_error(self) -> None:
        with socket.socket() as probe:  # a loopback port that nothing listens on
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        blobs = GcsBlobStore("b", client=emulator_client(url), timeout_s=1)
        with pytest.raises(BackendError, match=f"{url} did not answer"):
            await blobs.get("k")
        with pytest.raises(BackendError, match="STORAGE_EMULATOR_HOST"):
            await blobs.put("k", b"x")

    async def test_signing_needs_a_private_key(self, gcs_emulator: GcsEmulator) -> None:
        blobs = GcsBlobStore(gcs_emulator.bucket, client=gcs_emulator.client)
        with pytest.raises(BackendError, match="signing_credentials"):
            await blobs.signed_url("k", method="GET", expires_s=60)

    @pytest.mark.parametrize(
        ("bucket", "namespace", "problem"),
        [("gs://b", "", "bucket name"), ("", "", "bucket name"), ("b", "/abs", "namespace")],
    )
    async def test_bad_bucket_or_namespace_is_refused(
        self,
        gcs_emulator: GcsEmulator,
        bucket: str,
        namespace: str,
        problem: str,
    ) -> None:
        with pytest.raises(InvalidRequestError, match=problem):
            GcsBlobStore(bucket, namespace=namespace, client=gcs_emulator.client)
