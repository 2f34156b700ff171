"""The contract suites bound to the in-memory backends, plus their test-only helpers."""

from __future__ import annotations

import itertools

import pytest

from burla.backends.memory import (
    MemoryBlobStore,
    MemoryComputeProvider,
    MemoryContainerRuntime,
    MemoryStore,
)
from burla.core.clock import ManualClock
from burla.core.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    SignedUrlError,
)
from burla.core.models import ContainerSpec, NodeType
from burla.core.protocols import BootSpec, MachineStatus
from tests.contract.blobstore import (
    Advance,
    BlobStoreContract,
    Transfer,
    self_signed_transfer,
)
from tests.contract.compute import BootSpecFactory, ComputeProviderContract
from tests.contract.containers import ContainerRuntimeContract, FreePort
from tests.contract.store import StoreContract

BOOT_S = 3.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_000_000.0)


@pytest.fixture
def advance(clock: ManualClock) -> Advance:
    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    return advance


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self, clock: ManualClock) -> MemoryStore:
        return MemoryStore(clock)


class TestMemoryBlobStore(BlobStoreContract):
    @pytest.fixture
    def blobs(self, clock: ManualClock) -> MemoryBlobStore:
        return MemoryBlobStore(clock)

    @pytest.fixture
    def transfer(self, blobs: MemoryBlobStore) -> Transfer:
        return self_signed_transfer(blobs)


class TestMemoryComputeProvider(ComputeProviderContract):
    @pytest.fixture
    def compute(self, clock: ManualClock) -> MemoryComputeProvider:
        return MemoryComputeProvider(clock, boot_s=BOOT_S)

    @pytest.fixture
    def boot_spec(self) -> BootSpecFactory:
        node_type = NodeType(name="n2-standard-4", cpus=4, ram_gb=16)
        return lambda node_id: BootSpec(node_id, node_type, main_url="memory://main")

    @pytest.fixture
    def boot_timeout_s(self) -> float:
        return 10 * BOOT_S


class TestMemoryContainerRuntime(ContainerRuntimeContract):
    @pytest.fixture
    def runtime(self) -> MemoryContainerRuntime:
        return MemoryContainerRuntime()

    @pytest.fixture
    def spec(self) -> ContainerSpec:
        return ContainerSpec(image="python:3.11-slim")

    @pytest.fixture
    def free_port(self) -> FreePort:
        return itertools.count(20_000).__next__


# Behaviour of the memory backends beyond the contracts: their helpers and their checks.


@pytest.mark.anyio
class TestMemoryOnly:
    async def test_store_refuses_values_a_database_cannot_keep(self) -> None:
        store = MemoryStore(ManualClock())
        with pytest.raises(InvalidRequestError, match=r"document 'k'\.when is a tuple"):
            await store.put("k", {"when": (1, 2)})
        assert await store.get("k") is None
        with pytest.raises(InvalidRequestError, match="bytes"):
            await store.push("q", [("a", "not bytes")])  # type: ignore[list-item]

    async def test_put_many_writes_nothing_when_one_document_is_invalid(self) -> None:
        store = MemoryStore(ManualClock())
        with pytest.raises(InvalidRequestError, match="'b'"):
            await store.put_many({"a": {"n": 1}, "b": {"n": {1, 2}}})
        assert await store.list("") == []

    async def test_store_drains_a_large_queue(self, clock: ManualClock) -> None:
        store = MemoryStore(clock)
        await store.push("q", [(f"{n:06d}", b"") for n in range(100_000)])
        first = await store.claim("q", limit=50_000, lease_s=1)
        clock.advance(2)  # every lease has expired; half of them come back in their place
        await store.ack("q", [claim.receipt for claim in first[::2]])
        seen: list[str] = []
        while claims := await store.claim("q", limit=1000, lease_s=60):
            seen.extend(claim.item_id for claim in claims)
            await store.ack("q", [claim.receipt for claim in claims])
        assert seen == [f"{n:06d}" for n in range(1, 50_000, 2)] + [
            f"{n:06d}" for n in range(50_000, 100_000)
        ]

    async def test_lease_survives_cleanup_of_acked_items(self, clock: ManualClock) -> None:
        store = MemoryStore(clock)
        await store.push("q", [(f"{n:04d}", b"") for n in range(3000)])
        claims = await store.claim("q", limit=3000, lease_s=10)
        assert await store.ack("q", [claim.receipt for claim in claims[:-1]]) == {
            claim.receipt for claim in claims[:-1]
        }
        assert await store.claim("q", limit=10, lease_s=10) == []
        clock.advance(20)
        [again] = await store.claim("q", limit=10, lease_s=10)
        assert (again.item_id, again.deliveries) == ("2999", 2)

    async def test_signed_url_from_another_store_is_refused(self) -> None:
        ours, theirs = MemoryBlobStore(ManualClock()), MemoryBlobStore(ManualClock())
        await ours.put("k", b"data")
        url = await theirs.signed_url("k", method="GET", expires_s=60)
        assert url.startswith("memory://k?method=GET&expires=")
        with pytest.raises(SignedUrlError, match="signature"):
            await ours.get_signed(url)

    async def test_signed_url_keeps_odd_keys_intact(self) -> None:
        blobs = MemoryBlobStore(ManualClock())
        key = "dir/a file?with&odd=chars#"
        url = await blobs.signed_url(key, method="PUT", expires_s=60)
        await blobs.put_signed(url, b"data")
        assert await blobs.list("dir/") == [key]

    async def test_machine_boots_on_the_clock_and_can_fail(self, clock: ManualClock) -> None:
        compute = MemoryComputeProvider(clock, boot_s=BOOT_S)
        node_type = NodeType(name="n2-standard-4", cpus=4, ram_gb=16)
        booting = await compute.create(BootSpec("node-a", node_type, main_url="memory://main"))
        assert (booting.status, booting.address) == (MachineStatus.BOOTING, None)
        clock.advance(BOOT_S)
        running = await compute.get("node-a")
        assert running is not None
        assert (running.status, running.address) == (MachineStatus.RUNNING, "memory://node-a")
        compute.fail("node-a")
        failed = await compute.get("node-a")
        assert failed is not None
        assert failed.status is MachineStatus.FAILED
        with pytest.raises(NotFoundError, match="node-b"):
            compute.fail("node-b")

    async def test_crashed_container_is_listed_and_frees_its_port(self) -> None:
        runtime = MemoryContainerRuntime()
        spec = ContainerSpec(image="python:3.11-slim")
        await runtime.start(spec, name="worker-0", port=8080, cpuset=frozenset({0}))
        with pytest.raises(ConflictError, match="port 8080"):
            await runtime.start(spec, name="worker-1", port=8080, cpuset=frozenset({1}))
        crashed = runtime.crash("worker-0", exit_code=137)
        assert (crashed.running, crashed.exit_code) == (False, 137)
        assert await runtime.list() == [crashed]
        await runtime.start(spec, name="worker-1", port=8080, cpuset=frozenset({1}))
        assert [info.name for info in await runtime.list()] == ["worker-0", "worker-1"]
        with pytest.raises(NotFoundError, match="worker-9"):
            runtime.crash("worker-9", exit_code=1)

    async def test_container_needs_a_cpu(self) -> None:
        runtime = MemoryContainerRuntime()
        spec = ContainerSpec(image="python:3.11-slim")
        with pytest.raises(InvalidRequestError, match="cpuset"):
            await runtime.start(spec, name="worker-0", port=8080, cpuset=frozenset())
        await runtime.start(spec, name="worker-0", port=8080, cpuset=frozenset({0}))
        with pytest.raises(InvalidRequestError, match="cpuset"):
            await runtime.set_cpuset("worker-0", frozenset())
