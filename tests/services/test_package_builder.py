"""The package builder: one build per package version, however many ask at once, and a
clear error naming what could not be installed. pip really runs (against the index)."""

from __future__ import annotations

import importlib.metadata
import io
import sysconfig
import tarfile

import anyio
import pytest

from burla.backends.memory.blobs import MemoryBlobStore
from burla.backends.memory.store import MemoryStore
from burla.core.clock import WallClock
from burla.core.environment import PythonPackage, package_blob_key
from burla.core.errors import PackageInstallError
from burla.services.main_service.packages import PackageBuilder

pytestmark = pytest.mark.integration

PYTHON = "3.11"
PACKAGE = PythonPackage(name="iniconfig", version=importlib.metadata.version("iniconfig"))


def test_concurrent_jobs_build_a_package_once_and_later_ones_read_nothing() -> None:
    clock = WallClock()
    store, blobs = MemoryStore(clock), MemoryBlobStore(clock)
    # Two main_services sharing one Store and blob store, asked for the same package at once.
    builders = [PackageBuilder(store, blobs, clock) for _ in range(2)]
    keys: list[tuple[str, ...]] = []

    async def both() -> None:
        async def ensure(builder: PackageBuilder) -> None:
            keys.append(await builder.ensure([PACKAGE], PYTHON))

        async with anyio.create_task_group() as group:
            for builder in builders:
                group.start_soon(ensure, builder)

    anyio.run(both)
    key = package_blob_key(PACKAGE, PYTHON, sysconfig.get_platform())
    assert keys == [(key,), (key,)]

    async def built() -> tuple[int, list[str]]:
        doc = await store.get(key)
        assert doc is not None
        assert doc.data["state"] == "built"
        with tarfile.open(fileobj=io.BytesIO(await blobs.get(key))) as tar:
            names = tar.getnames()
        return doc.version, names

    version, names = anyio.run(built)
    assert version == 2  # claimed once, built once
    assert "iniconfig/__init__.py" in names

    async def again() -> None:
        await store.delete(key)  # a builder that knows the package looks nothing up
        assert await builders[0].ensure([PACKAGE], PYTHON) == (key,)

    anyio.run(again)


def test_an_uninstallable_package_is_named_with_the_installers_message() -> None:
    clock = WallClock()
    builder = PackageBuilder(MemoryStore(clock), MemoryBlobStore(clock), clock)
    missing = PythonPackage(name="burla-test-no-such-package", version="0.0.1")

    async def ensure() -> None:
        await builder.ensure([missing], PYTHON)

    with pytest.raises(PackageInstallError) as raised:
        anyio.run(ensure)
    message = str(raised.value)
    assert "could not install burla-test-no-such-package==0.0.1" in message
    assert "No matching distribution found" in message
