"""ComputeProviderContract: what every ComputeProvider backend must do.

A backend binds it with one fixture, `compute_under_test`, that gives a
ComputeUnderTest, and one class line: `class TestGceComputeProvider(ComputeProviderContract): ...`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from burla.core.errors import ConflictError
from burla.core.protocols import BootSpec, ComputeProvider, Machine, MachineStatus
from tests.contract.clocks import Advance, DrivenClock, advancer

BootSpecFactory = Callable[[str], BootSpec]


@dataclass(frozen=True)
class ComputeUnderTest:
    compute: ComputeProvider
    """A provider with no machines; the binding deletes what the test started."""
    boot_spec: BootSpecFactory
    """`(node_id) -> BootSpec` of a machine the provider can really start."""
    boot_timeout_s: float
    """How long a boot may take, on the provider's clock."""
    fail: Callable[[str], Awaitable[None]]
    """Makes a running machine die as a crashed or preempted one does (its process is
    killed, its VM terminated)."""
    clock: DrivenClock | None = None
    """The clock machines boot on, when the test drives it; None for real time."""
    spot_boot_spec: BootSpecFactory | None = None
    """`(node_id) -> BootSpec` of a spot machine, for a backend that has them
    (SpotComputeContract)."""
    preempt: Callable[[str], Awaitable[None]] | None = None
    """Makes the cloud take back a running spot machine, as a preemption does."""


async def _until_status(
    compute: ComputeProvider,
    node_id: str,
    status: MachineStatus,
    advance: Advance,
    timeout_s: float,
    passing: tuple[MachineStatus, ...] = (),
) -> Machine:
    """The machine once it has `status`, looked at 100 times over `timeout_s`; until
    then it may only have one of the `passing` statuses."""
    machine: Machine | None = None
    for _ in range(101):
        machine = await compute.get(node_id)
        assert machine is not None
        if machine.status is status:
            return machine
        assert machine.status in passing
        await advance(timeout_s / 100)
    raise AssertionError(f"{node_id} is {machine.status if machine else None}, not {status}")


@pytest.mark.anyio
class ComputeProviderContract:
    @pytest.fixture
    def compute(self, compute_under_test: ComputeUnderTest) -> ComputeProvider:
        return compute_under_test.compute

    @pytest.fixture
    def boot_spec(self, compute_under_test: ComputeUnderTest) -> BootSpecFactory:
        return compute_under_test.boot_spec

    @pytest.fixture
    def boot_timeout_s(self, compute_under_test: ComputeUnderTest) -> float:
        return compute_under_test.boot_timeout_s

    @pytest.fixture
    def advance(self, compute_under_test: ComputeUnderTest) -> Advance:
        return advancer(compute_under_test.clock)

    @pytest.fixture
    def fail(self, compute_under_test: ComputeUnderTest) -> Callable[[str], Awaitable[None]]:
        return compute_under_test.fail

    async def test_create_returns_the_machine(
        self, compute: ComputeProvider, boot_spec: BootSpecFactory
    ) -> None:
        boot = boot_spec("node-a")
        machine = await compute.create(boot)
        assert machine.node_id == "node-a"
        assert machine.node_type == boot.node_type.name
        assert machine.status in (MachineStatus.BOOTING, MachineStatus.RUNNING)

    async def test_get_and_list_show_it(
        self, compute: ComputeProvider, boot_spec: BootSpecFactory
    ) -> None:
        assert await compute.get("node-a") is None
        assert await compute.list() == []
        await compute.create(boot_spec("node-a"))
        got = await compute.get("node-a")
        assert got is not None
        assert got.node_id == "node-a"
        assert [machine.node_id for machine in await compute.list()] == ["node-a"]

    async def test_becomes_running(
        self,
        compute: ComputeProvider,
        boot_spec: BootSpecFactory,
        advance: Advance,
        boot_timeout_s: float,
    ) -> None:
        await compute.create(boot_spec("node-a"))
        booting = (MachineStatus.BOOTING,)
        machine = await _until_status(
            compute, "node-a", MachineStatus.RUNNING, advance, boot_timeout_s, booting
        )
        assert machine.address

    async def test_duplicate_create_conflicts(
        self, compute: ComputeProvider, boot_spec: BootSpecFactory
    ) -> None:
        await compute.create(boot_spec("node-a"))
        with pytest.raises(ConflictError, match="node-a"):
            await compute.create(boot_spec("node-a"))
        assert [machine.node_id for machine in await compute.list()] == ["node-a"]

    async def test_delete(self, compute: ComputeProvider, boot_spec: BootSpecFactory) -> None:
        await compute.create(boot_spec("node-a"))
        await compute.create(boot_spec("node-b"))
        assert await compute.delete("node-a") is True
        assert await compute.get("node-a") is None
        assert [machine.node_id for machine in await compute.list()] == ["node-b"]
        assert await compute.delete("node-a") is False

    async def test_delete_unknown_is_false(self, compute: ComputeProvider) -> None:
        assert await compute.delete("node-never") is False

    async def test_list_is_sorted(
        self, compute: ComputeProvider, boot_spec: BootSpecFactory
    ) -> None:
        for node_id in ["node-c", "node-a", "node-b"]:
            await compute.create(boot_spec(node_id))
        assert [machine.node_id for machine in await compute.list()] == [
            "node-a",
            "node-b",
            "node-c",
        ]

    async def test_a_failed_machine_is_listed_failed_until_deleted(
        self,
        compute: ComputeProvider,
        boot_spec: BootSpecFactory,
        advance: Advance,
        boot_timeout_s: float,
        fail: Callable[[str], Awaitable[None]],
    ) -> None:
        await compute.create(boot_spec("node-a"))
        booting, running = (MachineStatus.BOOTING,), (MachineStatus.RUNNING,)
        await _until_status(
            compute, "node-a", MachineStatus.RUNNING, advance, boot_timeout_s, booting
        )
        await fail("node-a")
        await _until_status(
            compute, "node-a", MachineStatus.FAILED, advance, boot_timeout_s, running
        )
        [machine] = await compute.list()
        assert (machine.node_id, machine.status, machine.address) == (
            "node-a",
            MachineStatus.FAILED,
            None,
        )
        assert await compute.delete("node-a") is True
        assert await compute.get("node-a") is None
        assert await compute.list() == []


@pytest.mark.anyio
class SpotComputeContract:
    """What a backend with spot machines does: a preempted machine says so, a crashed one
    does not. Bound with the same fixture, whose ComputeUnderTest has `spot_boot_spec`
    and `preempt`."""

    @pytest.fixture
    def spot(self, compute_under_test: ComputeUnderTest) -> ComputeUnderTest:
        assert compute_under_test.spot_boot_spec is not None
        assert compute_under_test.preempt is not None
        return compute_under_test

    async def _running_spot(self, spot: ComputeUnderTest, node_id: str) -> Machine:
        assert spot.spot_boot_spec is not None
        boot = spot.spot_boot_spec(node_id)
        assert boot.node_type.spot
        await spot.compute.create(boot)
        return await _until_status(
            spot.compute,
            node_id,
            MachineStatus.RUNNING,
            advancer(spot.clock),
            spot.boot_timeout_s,
            (MachineStatus.BOOTING,),
        )

    async def test_a_preempted_spot_machine_fails_and_says_it_was_preempted(
        self, spot: ComputeUnderTest
    ) -> None:
        assert spot.preempt is not None
        running = await self._running_spot(spot, "node-a")
        await self._running_spot(spot, "node-b")
        assert not running.preempted
        await spot.preempt("node-a")
        machine = await _until_status(
            spot.compute,
            "node-a",
            MachineStatus.FAILED,
            advancer(spot.clock),
            spot.boot_timeout_s,
            (MachineStatus.RUNNING, MachineStatus.STOPPING),
        )
        assert machine.preempted
        listed = {m.node_id: m for m in await spot.compute.list()}
        assert listed["node-a"].preempted
        assert listed["node-b"].status is MachineStatus.RUNNING
        assert not listed["node-b"].preempted
        assert await spot.compute.delete("node-a") is True
        assert [m.node_id for m in await spot.compute.list()] == ["node-b"]

    async def test_a_spot_machine_that_crashes_is_not_preempted(
        self, spot: ComputeUnderTest
    ) -> None:
        await self._running_spot(spot, "node-a")
        await spot.fail("node-a")
        machine = await _until_status(
            spot.compute,
            "node-a",
            MachineStatus.FAILED,
            advancer(spot.clock),
            spot.boot_timeout_s,
            (MachineStatus.RUNNING,),
        )
        assert not machine.preempted
