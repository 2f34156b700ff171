"""What only the directory blob store does: stores sharing a root, URLs any holder of
the secret checks, keys that could leave the root, and a full disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from burla.backends.local.blobs import DirectoryBlobStore
from burla.core.errors import (
    BackendError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    SignedUrlError,
)
from tests.small_disk import small_disk

SECRET = b"local-test-secret"


def _paths_under(root: Path) -> list[str]:
    """Every file and directory below `root`, relative to it, sorted."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.anyio
class TestDirectoryBlobStoreOnly:
    async def test_stores_on_one_root_share_blobs(self, tmp_path: Path) -> None:
        one = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        two = DirectoryBlobStore(tmp_path / "blobs" / ".." / "blobs", SECRET)
        await one.put("jobs/1/function.pkl", b"\x80\x05pickled")
        assert await two.get("jobs/1/function.pkl") == b"\x80\x05pickled"
        assert await two.list("jobs/") == ["jobs/1/function.pkl"]
        assert (
            tmp_path / "blobs" / "jobs" / "1" / "function.pkl"
        ).read_bytes() == b"\x80\x05pickled"
        assert await two.delete_prefix("jobs/") == 1
        with pytest.raises(NotFoundError, match=r"jobs/1/function\.pkl"):
            await one.get("jobs/1/function.pkl")

    async def test_urls_are_checked_by_any_store_with_the_secret(self, tmp_path: Path) -> None:
        signer = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        checker = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        stranger = DirectoryBlobStore(tmp_path / "blobs", b"another secret")
        elsewhere = DirectoryBlobStore(tmp_path / "other", SECRET)
        put_url = await signer.signed_url("inputs/0.pkl", method="PUT", expires_s=60)
        assert put_url.startswith(f"file://{signer.root}/inputs/0.pkl?method=PUT&expires=")
        await checker.put_signed(put_url, b"uploaded")
        get_url = await signer.signed_url("inputs/0.pkl", method="GET", expires_s=60)
        assert await checker.get_signed(get_url) == b"uploaded"
        with pytest.raises(SignedUrlError, match="signature"):
            await stranger.get_signed(get_url)
        with pytest.raises(SignedUrlError, match="outside this store's directory"):
            await elsewhere.get_signed(get_url)
        with pytest.raises(SignedUrlError, match="not a file://"):
            await checker.get_signed("https://example.invalid/inputs/0.pkl")

    @pytest.mark.parametrize(
        "key",
        ["..", "../escape", "a/../../escape", "/etc/passwd", "a//b", "a/", "./a", "", "a/\x00"],
    )
    async def test_keys_that_could_leave_the_root_are_refused(
        self, tmp_path: Path, key: str
    ) -> None:
        blobs = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        with pytest.raises(InvalidRequestError, match="blob key"):
            await blobs.put(key, b"x")
        with pytest.raises(InvalidRequestError, match="blob key"):
            await blobs.get(key)
        with pytest.raises(InvalidRequestError, match="blob key"):
            await blobs.signed_url(key, method="PUT", expires_s=60)
        assert _paths_under(tmp_path) == ["blobs"]

    async def test_prefixes_that_leave_the_root_match_nothing(self, tmp_path: Path) -> None:
        (tmp_path / "outside").write_bytes(b"not a blob")
        blobs = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        await blobs.put("a..b", b"x")
        assert await blobs.list("../") == []
        assert await blobs.delete_prefix("../") == 0
        assert await blobs.list("a..") == ["a..b"]
        assert (tmp_path / "outside").exists()

    async def test_delete_prefix_removes_emptied_directories(self, tmp_path: Path) -> None:
        root = tmp_path / "blobs"
        blobs = DirectoryBlobStore(root, SECRET)
        for key in ["jobs/1/in/0", "jobs/1/in/1", "jobs/1/fn", "jobs/2/fn"]:
            await blobs.put(key, b"x")
        assert await blobs.delete_prefix("jobs/1") == 3
        assert _paths_under(root) == ["jobs", "jobs/2", "jobs/2/fn"]
        assert await blobs.delete_prefix("") == 1
        assert _paths_under(tmp_path) == ["blobs"]  # the root itself stays

    async def test_a_key_cannot_be_a_blob_and_a_folder(self, tmp_path: Path) -> None:
        blobs = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        await blobs.put("a", b"blob")
        with pytest.raises(ConflictError, match="'a/b'"):
            await blobs.put("a/b", b"x")
        await blobs.put("x/y", b"blob")
        with pytest.raises(ConflictError, match="'x'"):
            await blobs.put("x", b"x")
        with pytest.raises(NotFoundError):
            await blobs.get("x")
        assert await blobs.list("") == ["a", "x/y"]

    async def test_full_disk_names_the_directory_and_leaves_nothing(self, tmp_path: Path) -> None:
        with small_disk(tmp_path / "blobs", "1m") as root:
            blobs = DirectoryBlobStore(root, SECRET)
            await blobs.put("jobs/1/fn", b"old")
            with pytest.raises(BackendError, match="disk that holds") as raised:
                await blobs.put("jobs/1/fn", b"new" * (1 << 20))
            assert str(root) in str(raised.value)
            assert "free disk space" in str(raised.value)
            assert _paths_under(root) == ["jobs", "jobs/1", "jobs/1/fn"]  # no partial file
            assert await blobs.get("jobs/1/fn") == b"old"
            await blobs.put("jobs/1/fn", b"new")  # it goes on once there is room
            assert await blobs.get("jobs/1/fn") == b"new"

    async def test_too_long_a_key_is_refused(self, tmp_path: Path) -> None:
        blobs = DirectoryBlobStore(tmp_path / "blobs", SECRET)
        with pytest.raises(InvalidRequestError, match="shorter key"):
            await blobs.put("a" * 300, b"x")
        assert await blobs.list("") == []

    async def test_partial_files_are_not_blobs(self, tmp_path: Path) -> None:
        root = tmp_path / "blobs"
        blobs = DirectoryBlobStore(root, SECRET)
        await blobs.put("jobs/fn", b"x")
        (root / "jobs" / ".burla-partial-fn.0123").write_bytes(b"half")
        assert await blobs.list("") == ["jobs/fn"]
        with pytest.raises(InvalidRequestError, match="reserved"):
            await blobs.put("jobs/.burla-partial-fn.0123", b"x")
