"""ComputeProviderContract: what every ComputeProvider backend must do, bound per backend.

A binding provides `compute`, a provider with no machines; `boot_spec`, a factory
`(node_id) -> BootSpec` for a machine it can really start; `advance`, which moves the
provider's clock forward; and `boot_timeout_s`, how long a boot may take on that clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from burla.core.errors import ConflictError
from burla.core.protocols import BootSpec, ComputeProvider, Machine, MachineStatus

Advance = Callable[[float], Awaitable[None]]
BootSpecFactory = Callable[[str], BootSpec]


@pytest.mark.anyio
class ComputeProviderContract:
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
        step = boot_timeout_s / 100
        machine: Machine | None = None
        for _ in range(101):
            machine = await compute.get("node-a")
            assert machine is not None
            assert machine.status in (MachineStatus.BOOTING, MachineStatus.RUNNING)
            if machine.status is MachineStatus.RUNNING:
                break
            await advance(step)
        assert machine is not None
        assert machine.status is MachineStatus.RUNNING
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
