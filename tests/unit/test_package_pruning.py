"""A node's package cache kept within a size: filled, then trimmed least recently used
first, never what a job in use links to; environments left broken go too."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from burla.backends.memory.blobs import MemoryBlobStore
from burla.core.environment import PACKAGES_PREFIX
from burla.services.node_service.package_pruning import mark_used, prune
from burla.services.node_service.packages import PackageCache

MB = 2**20


def unpacked(root: Path, name: str, megabytes: int, last_use: float) -> Path:
    package = root / "unpacked" / "py3.11" / "linux-x86_64" / name
    (package / name).mkdir(parents=True)
    (package / name / "__init__.py").write_bytes(b"x" * megabytes * MB)
    os.utime(package, (last_use, last_use))
    return package


def environment(root: Path, env_id: str, *packages: Path) -> Path:
    folder = root / "envs" / env_id
    folder.mkdir(parents=True)
    for package in packages:
        for entry in package.iterdir():
            (folder / entry.name).symlink_to(os.path.relpath(entry, folder))
    return folder


def test_the_least_recently_used_go_first_until_the_rest_fit(tmp_path: Path) -> None:
    old = unpacked(tmp_path, "old-1.0", 3, last_use=1000)
    middle = unpacked(tmp_path, "middle-1.0", 3, last_use=2000)
    new = unpacked(tmp_path, "new-1.0", 3, last_use=3000)
    env_old = environment(tmp_path, "env-old", old)
    env_new = environment(tmp_path, "env-new", middle, new)

    pruned, gone = prune(tmp_path, limit_bytes=7 * MB)

    assert not old.exists()
    assert middle.exists()
    assert new.exists()
    assert (pruned.removed, pruned.freed_bytes, pruned.kept_bytes) == (1, 3 * MB, 6 * MB)
    assert gone == {env_old}  # its package went: it is built again when a job needs it
    assert not env_old.exists()
    assert env_new.exists()


def test_what_a_running_job_uses_stays_whatever_the_limit(tmp_path: Path) -> None:
    used = unpacked(tmp_path, "used-1.0", 2, last_use=1000)
    idle = unpacked(tmp_path, "idle-1.0", 2, last_use=5000)
    running = environment(tmp_path, "env-running", used)

    pruned, gone = prune(tmp_path, limit_bytes=0, in_use=[running])

    assert used.exists()
    assert not idle.exists()
    assert running.exists()
    assert gone == set()
    assert pruned.kept_bytes == 2 * MB


def test_a_use_makes_a_package_the_newest(tmp_path: Path) -> None:
    first = unpacked(tmp_path, "first-1.0", 1, last_use=1000)
    second = unpacked(tmp_path, "second-1.0", 1, last_use=2000)
    mark_used([first, tmp_path / "not-there"])
    prune(tmp_path, limit_bytes=1 * MB)
    assert first.exists()
    assert not second.exists()


def test_an_empty_cache_prunes_nothing(tmp_path: Path) -> None:
    pruned, gone = prune(tmp_path, limit_bytes=0)
    assert (pruned.removed, pruned.freed_bytes, pruned.kept_bytes, gone) == (0, 0, 0, set())


@pytest.mark.anyio
async def test_a_cache_prunes_after_a_job_only_what_it_unpacked_since(tmp_path: Path) -> None:
    """A node resets after every job; a prune walks the whole cache on disk, so it runs
    only when something was unpacked since the last one (or a node finds a cache)."""
    blobs = MemoryBlobStore()
    cache = PackageCache(tmp_path / "fresh", blobs)
    assert not cache.grown
    await blobs.put(f"{PACKAGES_PREFIX}py3.11/linux-x86_64/tiny-1.0.tar.gz", _archive("tiny"))
    await cache.environment([f"{PACKAGES_PREFIX}py3.11/linux-x86_64/tiny-1.0.tar.gz"])
    assert cache.grown
    await cache.prune(10 * MB)
    assert not cache.grown
    assert PackageCache(tmp_path / "fresh", blobs).grown


def _archive(name: str) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        member = tarfile.TarInfo(f"{name}/__init__.py")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"1"))
    return data.getvalue()
