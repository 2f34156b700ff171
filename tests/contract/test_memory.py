"""The contract suites bound to the in-memory backends."""

from __future__ import annotations

import pytest

from burla.backends.memory import (
    MemoryBlobStore,
    MemoryComputeProvider,
    MemoryContainerRuntime,
    MemoryStore,
)
from burla.core.clock import ManualClock
from burla.core.models import ContainerSpec, NodeType
from burla.core.protocols import BootSpec
from tests.contract.blobstore import BlobStoreContract, BlobsUnderTest, self_signed_transfer
from tests.contract.compute import ComputeProviderContract, ComputeUnderTest, SpotComputeContract
from tests.contract.containers import ContainerRuntimeContract, RuntimeUnderTest
from tests.contract.store import StoreContract, StoreUnderTest

BOOT_S = 3.0


@pytest.fixture
def store_under_test(clock: ManualClock) -> StoreUnderTest:
    store = MemoryStore(clock)
    return StoreUnderTest(store, connect=lambda: store, clock=clock)


@pytest.fixture
def blobs_under_test(clock: ManualClock) -> BlobsUnderTest:
    blobs = MemoryBlobStore(clock)
    return BlobsUnderTest(blobs, self_signed_transfer(blobs), clock=clock)


@pytest.fixture
def compute_under_test(clock: ManualClock) -> ComputeUnderTest:
    compute = MemoryComputeProvider(clock, boot_s=BOOT_S)
    node_type = NodeType(name="n2-standard-4", cpus=4, ram_gb=16)

    spot_type = node_type.model_copy(update={"spot": True})

    async def fail(node_id: str) -> None:
        compute.fail(node_id)

    async def preempt(node_id: str) -> None:
        compute.preempt(node_id)

    return ComputeUnderTest(
        compute,
        boot_spec=lambda node_id: BootSpec(node_id, node_type, main_url="memory://main"),
        boot_timeout_s=10 * BOOT_S,
        fail=fail,
        clock=clock,
        spot_boot_spec=lambda node_id: BootSpec(node_id, spot_type, main_url="memory://main"),
        preempt=preempt,
    )


@pytest.fixture
def runtime_under_test() -> RuntimeUnderTest:
    runtime = MemoryContainerRuntime()
    spec = ContainerSpec(image="python:3.11-slim")

    async def start_exiting(name: str, port: int, exit_code: int) -> None:
        await runtime.start(spec, name=name, port=port, cpuset=frozenset({0}))
        runtime.crash(name, exit_code=exit_code)

    return RuntimeUnderTest(runtime, spec, start_exiting)


class TestMemoryStore(StoreContract): ...


class TestMemoryBlobStore(BlobStoreContract): ...


class TestMemoryComputeProvider(ComputeProviderContract): ...


class TestMemorySpotMachines(SpotComputeContract): ...


class TestMemoryContainerRuntime(ContainerRuntimeContract): ...
