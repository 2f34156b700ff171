"""The simulated cluster's nodes: each machine that finishes booting runs the real
NodeService, and main_service reaches it over an in-memory link served by the node's
real MainLink."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup

from burla.core.errors import BackendError
from burla.core.models import StandbyDefinition
from burla.services.node_service.link import MainLink
from burla.services.node_service.node import NodeService
from burla.services.store_keys import STANDBY_KEY
from burla.sim.clock import VirtualClock
from burla.sim.compute import ADDRESS_SCHEME, SimMachine
from burla.sim.cpu import SERVICE, CpuLedger, charged_to, ready_at
from burla.sim.pipes import PipeEnd, pipe
from burla.sim.recorder import Recorder
from burla.sim.storage import SimStorage
from burla.sim.workers import SimContainerRuntime, WorkerWorld


@dataclass(eq=False)
class SimNode:
    machine: SimMachine
    runtime: SimContainerRuntime
    link: MainLink
    service: NodeService | None = None
    scope: anyio.CancelScope | None = None
    tasks: TaskGroup | None = None
    dead: bool = False
    links: list[PipeEnd] = field(default_factory=list)


class SimNodes:
    """The nodes by id, from their machine's boot to its end."""

    def __init__(
        self,
        world: WorkerWorld,
        storage: SimStorage,
        clock: VirtualClock,
        recorder: Recorder,
        *,
        secret: str,
        link_delay: Callable[[], float] | None,
        booted: Callable[[str], Awaitable[None]],
        exited: Callable[[str, BackendError], None] | None = None,
        cpus: CpuLedger | None = None,
    ) -> None:
        self.world, self.storage, self.clock, self.recorder = world, storage, clock, recorder
        self._secret = secret
        """The node secret, as a real node finds it in its boot environment."""
        self._link_delay = link_delay
        self._booted = booted
        self._exited = exited
        """Told of a node_service that ends for a backend's failure (its retries ran out),
        as the process would exit on its machine."""
        """The node's POST /nodes/{id}/booted."""
        self._cpus = cpus
        """Each node's CPU, when the services' CPU is charged."""
        self.by_id: dict[str, SimNode] = {}
        self.tasks: TaskGroup | None = None
        """The simulation's tasks, where nodes run; set when it starts."""

    def machine_up(self, machine: SimMachine) -> None:
        node_id = machine.boot.node_id
        runtime = SimContainerRuntime(self.world, node_id, machine.boot.node_type.ram_gb)
        node = SimNode(machine, runtime, MainLink(self._secret))
        self.by_id[node_id] = node
        assert self.tasks is not None
        self.tasks.start_soon(self._run, node)

    async def _run(self, node: SimNode) -> None:
        """The node's life, as python -m burla.services.node_service lives it on a VM."""
        if node.dead:
            return
        node_id = node.machine.boot.node_id
        if self._cpus is not None:
            SERVICE.set(self._cpus.node(node_id))  # its tasks inherit it
        doc = await self.storage.store.get(STANDBY_KEY)
        standby = StandbyDefinition.model_validate(doc.data if doc else {})
        node.service = NodeService(
            node_id=node_id,
            node_type=node.machine.boot.node_type,
            containers=standby.containers,
            runtime=node.runtime,
            store=self.storage.services_store,
            blobs=self.storage.services_blobs,
            report=node.link.report,
            clock=self.clock,
            status_dir=self.world.status_root / node_id,
            connect_worker=node.runtime.connect,
            pick_port=itertools.count(20_000).__next__,
        )
        with anyio.CancelScope() as scope:
            node.scope = scope
            if node.dead:
                return
            try:
                async with anyio.create_task_group() as tasks:
                    node.tasks = tasks
                    await node.service.run(tasks)
                    self.recorder.machine_ready(self.clock.elapsed(), node_id)
                    assert self.tasks is not None
                    self.tasks.start_soon(self._say_booted, node)
            except* BackendError as failed:
                if self._exited is None:
                    raise
                self._exited(node_id, first_backend_error(failed))

    async def _say_booted(self, node: SimNode) -> None:
        if not node.dead:  # else its machine is gone: nobody asks
            await self._booted(node.machine.boot.node_id)

    def machine_down(self, node_id: str) -> None:
        node = self.by_id.pop(node_id, None)
        if node is None:
            return
        node.dead = True
        if node.scope is not None:
            node.scope.cancel()
        node.runtime.kill_all()
        for end in node.links:
            end.close()

    async def dial(self, address: str) -> PipeEnd:
        """main_service's connection to the node at `address`."""
        node = self.by_id.get(address.removeprefix(ADDRESS_SCHEME))
        if node is None or node.dead or node.tasks is None or node.service is None:
            raise ConnectionRefusedError(f"nothing listens at {address}")
        near, far = pipe(self._link_delay, None if self._cpus is None else ready_at)
        node.links.append(far)
        node.tasks.start_soon(self._serve, node, far)
        return near

    async def _serve(self, node: SimNode, end: PipeEnd) -> None:
        """The node's end of a connection, in the node's name (main_service dialed it)."""
        assert node.service is not None
        node_cpu = None if self._cpus is None else self._cpus.node(node.machine.boot.node_id)
        with charged_to(node_cpu):
            await node.link.serve(node.service, end)


def first_backend_error(group: BaseExceptionGroup[BackendError]) -> BackendError:
    """The first BackendError of a group, however deep."""
    error = group.exceptions[0]
    return error if isinstance(error, BackendError) else first_backend_error(error)
