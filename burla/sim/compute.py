"""Simulated machines: a ComputeProvider whose machines boot after a time drawn from
their node type, sometimes never come up, stay within a CPU quota, and can die or, spot
ones, be preempted.

A machine that finishes booting hands itself to `on_up` (the simulation starts its
node_service there); one that is deleted or dies goes to `on_down`.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from burla.core.errors import BackendError, ConflictError, NotFoundError
from burla.core.protocols import BootSpec, Machine, MachineStatus
from burla.sim.clock import Timer, Timers, VirtualClock
from burla.sim.recorder import Recorder
from burla.sim.scenario import SimNodeType

ADDRESS_SCHEME = "sim://"
_NODE_ID = operator.attrgetter("node_id")


@dataclass(eq=False)
class SimMachine:
    boot: BootSpec
    cpus: int
    status: MachineStatus
    will_fail: bool
    timer: Timer | None = None
    preempted: bool = False

    def describe(self) -> Machine:
        address = f"{ADDRESS_SCHEME}{self.boot.node_id}"
        running = self.status is MachineStatus.RUNNING
        return Machine(
            self.boot.node_id,
            self.boot.node_type.name,
            self.status,
            address if running else None,
            self.preempted,
        )


class SimComputeProvider:
    def __init__(
        self,
        *,
        node_types: Mapping[str, SimNodeType],
        clock: VirtualClock,
        timers: Timers,
        recorder: Recorder,
        rng: random.Random,
        on_up: Callable[[SimMachine], None],
        on_down: Callable[[str], None],
        quota_cpus: int | None = None,
    ) -> None:
        self._types = node_types
        self._clock = clock
        self._timers = timers
        self._recorder = recorder
        self._rng = rng
        self._on_up = on_up
        self._on_down = on_down
        self._quota = quota_cpus
        self._machines: dict[str, SimMachine] = {}
        self._described: dict[str, Machine] = {}
        """Each machine as `get` and `list` give it, made anew only when it changes:
        main_service lists every machine twice a second."""
        self._cpus = 0
        self._listing: list[Machine] | None = None
        self.refused = 0

    async def create(self, boot: BootSpec) -> Machine:
        if boot.node_id in self._machines:
            raise ConflictError(f"a machine named {boot.node_id!r} already exists")
        sim_type = self._types.get(boot.node_type.name)
        if sim_type is None:
            raise BackendError(f"the simulated cloud has no machine type {boot.node_type.name!r}")
        if self._quota is not None and self._cpus + sim_type.cpus > self._quota:
            self.refused += 1
            raise BackendError(
                f"quota CPUS exceeded: {self._cpus} of {self._quota} in use, "
                f"{boot.node_id} needs {sim_type.cpus} more"
            )
        fails = self._rng.random() < sim_type.boot_failure_rate
        boot_s = sim_type.boot_s.draw(self._rng)
        machine = SimMachine(boot, sim_type.cpus, MachineStatus.BOOTING, fails)
        machine.timer = self._timers.after(boot_s, lambda: self._booted(machine))
        self._machines[boot.node_id] = machine
        self._cpus += sim_type.cpus
        self._changed(machine)
        self._recorder.machine_created(
            self._clock.elapsed(), boot.node_id, sim_type.name, sim_type.cpus
        )
        return self._described[boot.node_id]

    def _booted(self, machine: SimMachine) -> None:
        machine.timer = None
        machine.status = MachineStatus.FAILED if machine.will_fail else MachineStatus.RUNNING
        self._changed(machine)
        if not machine.will_fail:
            self._on_up(machine)

    async def get(self, node_id: str) -> Machine | None:
        return self._described.get(node_id)

    async def list(self) -> list[Machine]:
        if self._listing is None:
            self._listing = sorted(self._described.values(), key=_NODE_ID)
        return list(self._listing)

    def _changed(self, machine: SimMachine) -> None:
        self._described[machine.boot.node_id] = machine.describe()
        self._listing = None

    async def delete(self, node_id: str) -> bool:
        machine = self._machines.pop(node_id, None)
        if machine is None:
            return False
        self._gone(machine)
        return True

    def fail(self, node_id: str) -> None:
        """The machine dies (a preempted or broken VM); it stays listed as FAILED."""
        machine = self._machines.get(node_id)
        if machine is None:
            raise NotFoundError(f"there is no machine {node_id!r} to fail")
        if machine.status is MachineStatus.FAILED:
            return
        machine.status = MachineStatus.FAILED
        self._changed(machine)
        self._on_down(node_id)

    def preempt(self, node_id: str) -> bool:
        """The cloud takes back a running spot machine: it stays listed as FAILED and
        preempted. False (nothing happens) for a machine that is gone or not running."""
        machine = self._machines.get(node_id)
        if machine is None or machine.status is not MachineStatus.RUNNING:
            return False
        if not machine.boot.node_type.spot:
            raise BackendError(f"machine {node_id!r} is not a spot VM; only spot VMs are preempted")
        machine.preempted = True
        self.fail(node_id)
        return True

    def _gone(self, machine: SimMachine) -> None:
        if machine.timer is not None:
            machine.timer.cancel()
        self._cpus -= machine.cpus
        del self._described[machine.boot.node_id]
        self._listing = None
        self._recorder.machine_gone(self._clock.elapsed(), machine.boot.node_id)
        self._on_down(machine.boot.node_id)
