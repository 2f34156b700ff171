"""The cluster's package archives stay within their limit: the least recently used go
first, never one a running job needs or one just asked for; an archive whose removal was
cut short goes at the next prune; a job that needs a removed source package gets
SourceNotKeptError, and one that brings it again gets it rebuilt."""

from __future__ import annotations

import sysconfig

import pytest

from burla.backends.memory.blobs import MemoryBlobStore
from burla.backends.memory.store import MemoryStore
from burla.core.clock import ManualClock
from burla.core.environment import PythonPackage, package_blob_key
from burla.core.errors import SourceNotKeptError
from burla.services.main_service.packages import JUST_USED_S, PackageBuilder

PYTHON = "3.11"
SIZE = 1000
"""Each archive's size: the limits below are counted in archives."""


def source(name: str) -> PythonPackage:
    return PythonPackage(name=name, version="1.0+src.abc123")


def key_of(package: PythonPackage) -> str:
    return package_blob_key(package, PYTHON, sysconfig.get_platform())


class Cluster:
    def __init__(self, limit_archives: float, in_use: set[str] | None = None) -> None:
        self.clock = ManualClock(1_000_000.0)
        self.store, self.blobs = MemoryStore(self.clock), MemoryBlobStore(self.clock)
        self.in_use = in_use if in_use is not None else set()
        self.builder = PackageBuilder(
            self.store,
            self.blobs,
            self.clock,
            limit_bytes=int(limit_archives * SIZE),
            in_use=lambda: self.in_use,
        )

    async def job(self, *packages: PythonPackage, bring: bool = True) -> tuple[str, ...]:
        """A job that needs `packages` (and brings their sources), a while after the last."""
        self.clock.advance(JUST_USED_S + 1)
        sources = {}
        for package in packages if bring else ():
            upload = f"uploads/u/{package.name}.tar.gz"
            await self.blobs.put(upload, package.name.encode().ljust(SIZE, b"."))
            sources[package.requirement] = upload
        return await self.builder.ensure(list(packages), PYTHON, sources)

    async def kept(self) -> list[str]:
        return await self.blobs.list("packages/")


a, b, c, d = (source(name) for name in "abcd")


@pytest.mark.anyio
async def test_past_the_limit_the_least_recently_used_archives_go():
    cluster = Cluster(limit_archives=2.5)
    await cluster.job(a)
    await cluster.job(b)
    await cluster.job(a)  # a is used again: b is now the least recently used
    await cluster.job(c)
    assert await cluster.kept() == sorted([key_of(a), key_of(c)])
    assert await cluster.store.get(key_of(b)) is None  # its claim went first


@pytest.mark.anyio
async def test_an_archive_a_running_job_needs_or_one_just_asked_for_stays():
    cluster = Cluster(limit_archives=1)
    await cluster.job(a)
    cluster.in_use.add(key_of(a))
    await cluster.job(b)
    cluster.clock.advance(JUST_USED_S + 1)
    await cluster.builder.ensure([b], PYTHON, {})  # asked for again, a moment ago
    pruned = await cluster.builder.prune(0)
    assert pruned.removed == ()  # a is in use; b was asked for within JUST_USED_S
    assert pruned.kept_bytes == 2 * SIZE
    cluster.clock.advance(JUST_USED_S)
    pruned = await cluster.builder.prune(0)
    assert pruned.removed == (key_of(b),)
    assert (pruned.freed_bytes, pruned.kept_bytes) == (SIZE, SIZE)


@pytest.mark.anyio
async def test_a_removed_source_package_is_asked_for_again_and_rebuilt():
    cluster = Cluster(limit_archives=1)
    await cluster.job(a)
    await cluster.job(b)
    assert await cluster.kept() == [key_of(b)]
    with pytest.raises(SourceNotKeptError, match="BURLA_PACKAGES_MAX_GB"):
        await cluster.job(a, bring=False)  # the client thought the cluster had it
    assert await cluster.job(a) == (key_of(a),)
    assert key_of(a) in await cluster.kept()


@pytest.mark.anyio
async def test_an_archive_whose_claim_went_but_not_its_blob_goes_at_the_next_prune():
    cluster = Cluster(limit_archives=10)
    await cluster.job(a)
    await cluster.store.delete(key_of(a))  # a removal cut short between the two
    await cluster.builder.prune(10 * SIZE)
    assert await cluster.kept() == []


@pytest.mark.anyio
async def test_last_use_is_written_to_the_claim_for_other_main_services():
    cluster = Cluster(limit_archives=10)
    await cluster.job(a)
    built = await cluster.store.get(key_of(a))
    assert built is not None
    assert built.data["bytes"] == SIZE
    cluster.clock.advance(2 * 3600)
    await cluster.job(a)
    used = await cluster.store.get(key_of(a))
    assert used is not None
    assert used.data["used_at"] == cluster.clock.now()
    other = PackageBuilder(cluster.store, cluster.blobs, cluster.clock)  # knows nothing of a
    cluster.clock.advance(JUST_USED_S + 1)
    await cluster.job(b)
    assert (await other.prune(SIZE)).removed == (key_of(a),)  # a is older than b
