"""MemoryComputeProvider: machines that exist only as records and boot on the clock."""

from __future__ import annotations

from dataclasses import dataclass

from burla.core.clock import Clock, WallClock
from burla.core.errors import ConflictError, InvalidRequestError, NotFoundError
from burla.core.protocols import BootSpec, Machine, MachineStatus


@dataclass(eq=False)
class _Record:
    boot: BootSpec
    created: float
    failed: bool = False
    preempted: bool = False


class MemoryComputeProvider:
    """The ComputeProvider protocol in memory: a machine is BOOTING for `boot_s` seconds
    of the clock after it is created, then RUNNING at `memory://<node_id>`.

    `fail` marks a machine FAILED, to simulate a lost node; `preempt` a spot machine
    FAILED and preempted, as the cloud taking it back.
    """

    def __init__(self, clock: Clock | None = None, boot_s: float = 0.0) -> None:
        if boot_s < 0:
            raise InvalidRequestError(f"boot_s must be 0 or more, not {boot_s}")
        self._clock: Clock = clock if clock is not None else WallClock()
        self._boot_s = boot_s
        self._machines: dict[str, _Record] = {}

    async def create(self, boot: BootSpec) -> Machine:
        if boot.node_id in self._machines:
            raise ConflictError(
                f"a machine named {boot.node_id!r} already exists; "
                "delete it first or choose another node id"
            )
        record = _Record(boot=boot, created=self._clock.now())
        self._machines[boot.node_id] = record
        return self._describe(record)

    async def get(self, node_id: str) -> Machine | None:
        record = self._machines.get(node_id)
        return None if record is None else self._describe(record)

    async def list(self) -> list[Machine]:
        return [self._describe(self._machines[node_id]) for node_id in sorted(self._machines)]

    async def delete(self, node_id: str) -> bool:
        return self._machines.pop(node_id, None) is not None

    def fail(self, node_id: str) -> None:
        """Mark a machine FAILED, as if its VM died; it stays listed until deleted."""
        record = self._machines.get(node_id)
        if record is None:
            raise NotFoundError(f"there is no machine {node_id!r} to fail; create it first")
        record.failed = True

    def preempt(self, node_id: str) -> None:
        """Take back a spot machine: FAILED and preempted; it stays listed until deleted."""
        record = self._machines.get(node_id)
        if record is None or not record.boot.node_type.spot:
            raise InvalidRequestError(f"there is no spot machine {node_id!r} to preempt")
        record.failed = record.preempted = True

    def _describe(self, record: _Record) -> Machine:
        node_id = record.boot.node_id
        node_type = record.boot.node_type.name
        if record.failed:
            return Machine(node_id, node_type, MachineStatus.FAILED, preempted=record.preempted)
        if self._clock.now() < record.created + self._boot_s:
            return Machine(node_id, node_type, MachineStatus.BOOTING)
        return Machine(node_id, node_type, MachineStatus.RUNNING, f"memory://{node_id}")
