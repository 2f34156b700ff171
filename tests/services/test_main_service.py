"""main_service's logic in-process, on memory backends."""

from __future__ import annotations

import anyio
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core.clock import WallClock
from burla.core.errors import BackendError
from burla.core.models import (
    ClusterConfig,
    ContainerSpec,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.core.protocols import BootSpec, Machine
from burla.services.main_service.service import MainService

pytestmark = pytest.mark.anyio


class OutOfQuota(MemoryComputeProvider):
    """A cloud project whose CPU quota is used up: every machine it is asked for fails."""

    attempts = 0

    async def create(self, boot: BootSpec) -> Machine:
        self.attempts += 1
        raise BackendError("quota CPUS of project 'p' is used up")


async def test_machines_that_cannot_be_made_are_retried_with_growing_pauses() -> None:
    clock = WallClock()
    node_type = NodeType(name="n", cpus=2, ram_gb=8)
    config = ClusterConfig(
        standby=StandbyDefinition(
            nodes=(StandbyGroup(node_type=node_type, count=2),),
            containers=(ContainerSpec(image="default"),),
        )
    )
    compute = OutOfQuota(clock)
    service = MainService(
        config=config,
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=compute,
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        await anyio.sleep(2.0)
        tasks.cancel_scope.cancel()
    # Two standby nodes wanted: tries at 0, 0.5 and 1.5 s (then 3.5 s) each, not a hot loop.
    assert 2 <= compute.attempts <= 8
    status = service.cluster_status()
    assert "quota CPUS of project 'p' is used up" in status["creation_errors"][0]["message"]


async def test_machines_of_no_node_are_deleted() -> None:
    clock = WallClock()
    node_type = NodeType(name="n", cpus=2, ram_gb=8)
    compute = MemoryComputeProvider(clock)
    stray = BootSpec("node-left-by-a-crash", node_type, "http://127.0.0.1:1")
    await compute.create(stray)
    service = MainService(
        config=ClusterConfig(),  # no standby: the cluster wants no machine at all
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=compute,
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        with anyio.fail_after(10):
            while await compute.list():  # noqa: ASYNC110 - the provider has no event to wait on
                await anyio.sleep(0.05)
        tasks.cancel_scope.cancel()
    assert await compute.get("node-left-by-a-crash") is None


class SlowToDelete(MemoryComputeProvider):
    """A provider that refuses the first delete, as a machine still starting does."""

    refused = 0

    async def delete(self, node_id: str) -> bool:
        if not self.refused:
            self.refused += 1
            raise BackendError("the machine is not ready")
        return await super().delete(node_id)


async def test_a_machine_error_shows_when_it_happened_and_goes_once_the_cluster_is_whole() -> None:
    clock = WallClock()
    compute = SlowToDelete(clock)
    await compute.create(BootSpec("node-left-by-a-crash", NodeType(name="n", cpus=2, ram_gb=8), ""))
    service = MainService(
        config=ClusterConfig(),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=compute,
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )
    seen = []
    async with anyio.create_task_group() as tasks:
        before = clock.now()
        await service.run(tasks)
        with anyio.fail_after(10):
            while not compute.refused or await compute.list():
                seen += service.cluster_status()["creation_errors"]
                await anyio.sleep(0.05)
            await anyio.sleep(1.0)  # a look at the machines after the delete
        errors = service.cluster_status()["creation_errors"]
        tasks.cancel_scope.cancel()
    (error,) = {(e["at"], e["message"]) for e in seen}
    assert error[1] == "node-left-by-a-crash: not deleted yet: the machine is not ready"
    assert before <= error[0] <= clock.now()
    assert errors == []  # made up for: the stray machine is gone, nothing else is wanted


class Flaky(MemoryComputeProvider):
    """A provider whose second look fails outright and whose third misses a machine, as
    a cloud's list can for a moment."""

    looks = 0

    async def list(self) -> list[Machine]:
        self.looks += 1
        if self.looks == 2:
            raise BackendError("Compute Engine kept failing for 30 s")
        machines = await super().list()
        return machines[1:] if self.looks == 3 else machines


async def test_a_failing_or_incomplete_look_at_the_machines_loses_nothing() -> None:
    clock = WallClock()
    node_type = NodeType(name="n", cpus=2, ram_gb=8)
    compute = Flaky(clock)
    standby = StandbyDefinition(nodes=(StandbyGroup(node_type=node_type, count=2),))
    service = MainService(
        config=ClusterConfig(standby=standby, node_types=(node_type,)),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=compute,
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        first = set(service.cluster.nodes)
        with anyio.fail_after(10):
            while compute.looks < 4:  # noqa: ASYNC110 - the provider has no event to wait on
                await anyio.sleep(0.05)
        nodes = set(service.cluster.nodes)
        errors = [e["message"] for e in service.cluster_status()["creation_errors"]]
        tasks.cancel_scope.cancel()
    assert len(first) == 2
    assert nodes == first  # neither the failed look nor the one that missed a machine lost it
    assert "could not look at the machines: Compute Engine kept failing for 30 s" in errors
