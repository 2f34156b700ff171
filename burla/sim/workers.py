"""Simulated containers: a ContainerRuntime per node whose workers speak the real worker
protocol (burla.services.container_service.worker) to the real node_service.

A worker is not a task: the node's frames reach it synchronously through its channel,
and the node's own reader task, waiting for the worker's next frame, wakes when the input
running ends (a timer on the simulation's heap) and finishes it: an input costs no task of
its own. The node sees a WorkerChannel like any other: a hello with a pid, then results.
Messages (burla.core.worker_wire) pass as objects, not bytes: the encoding is the same as
over TCP and tested there, and skipping it here saves a sixth of a big simulation. A
worker that dies while running an input leaves that input in its status file, as a real
one does, so the node can name it.
"""

from __future__ import annotations

import builtins
import collections
import itertools
import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio
import trio

from burla.backends.runtime_rules import (
    check_cpuset,
    check_memory_limit,
    check_start,
    name_taken,
    not_found,
)
from burla.core.errors import BackendError
from burla.core.memory import gib
from burla.core.models import ContainerSpec
from burla.core.protocols import ContainerInfo, Mount
from burla.core.worker_wire import (
    EndJob,
    Hello,
    Inputs,
    JobErrorReport,
    JobStart,
    ResultItem,
    Results,
)
from burla.services.container_service.status import STATUS
from burla.services.container_service.worker import results_due
from burla.services.node_service.channel import Heard, Sent, WorkerChannel
from burla.sim.clock import Timer, Timers, VirtualClock
from burla.sim.recorder import Recorder
from burla.sim.scenario import SimImage


@dataclass(frozen=True)
class JobCosts:
    """What the scenario says one job's inputs cost: run time per input index."""

    run_s: Sequence[float]
    result_bytes: int
    function_loads: bool = True
    memory_gb: Mapping[int, float] = field(default_factory=dict)
    """The memory some inputs use (GB); the others' is within func_ram."""
    raises: frozenset[int] = frozenset()
    """Inputs whose function raises, at the end of their run time, on every try."""


def raised(index: int) -> bytes:
    """What a worker sends for an input whose function raised and whose exception it
    could not pickle (container_service.outcome): its type, message and traceback."""
    message = f"input {index} raises (as the scenario says)"
    text = {
        "type": "builtins.ValueError",
        "message": message,
        "traceback": f"Traceback (most recent call last):\nValueError: {message}\n",
    }
    return json.dumps(text).encode()


@dataclass
class WorkerWorld:
    """What every simulated container shares: time, the workload, the record."""

    clock: VirtualClock
    timers: Timers
    recorder: Recorder
    images: Mapping[str, SimImage]
    rng: random.Random
    status_root: Path
    costs: dict[str, JobCosts] = field(default_factory=dict)
    pids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))


class SimChannel(WorkerChannel):
    """The node's end of a simulated worker's connection: what the node sends reaches
    the worker at once; what the worker sends waits here for the node to read it."""

    def __init__(self, worker: SimWorker) -> None:  # no byte stream under it
        self._worker = worker
        self._incoming: collections.deque[Heard] = collections.deque()
        self._ended = False
        self._closed = False
        self._reader: trio.lowlevel.Task | None = None
        """The node's reader, while it waits for the worker."""
        self._due: Timer | None = None
        """The reader's wake-up when the worker's input ends, on the simulation's heap of
        timers: cheaper than a trio deadline, whose expiry raises Cancelled in it."""

    def due(self, when: float) -> None:
        """From the worker: an input ends at `when`; the reader wakes then to finish it."""
        if self._reader is not None:
            if self._due is not None:
                self._due.cancel()
            self._due = self._worker.world.timers.at(when, self._wake)

    def put(self, messages: list[Heard]) -> None:
        """From the worker: messages for the node."""
        self._incoming.extend(messages)
        self._wake()

    def end(self) -> None:
        """From the worker: it is gone; the node reads the end once it has read the rest."""
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        reader, self._reader = self._reader, None
        if self._due is not None:
            self._due.cancel()
            self._due = None
        if reader is not None:
            trio.lowlevel.reschedule(reader)

    async def _wait(self) -> None:
        """Until the worker sends, ends, or its input running is due."""
        self._reader = trio.lowlevel.current_task()
        if self._worker.ends_at < math.inf:
            self._due = self._worker.world.timers.at(self._worker.ends_at, self._wake)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._reader = None
            if self._due is not None:
                self._due.cancel()
                self._due = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def send(self, messages: list[Sent]) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if not self._worker.alive:
            raise anyio.BrokenResourceError
        self._worker.feed(messages)

    async def receive(self) -> Heard | None:
        while not self._incoming:
            if self._closed or self._ended:
                return None
            await self._wait()
            self._worker.finish_if_due()
        return self._incoming.popleft()

    async def aclose(self) -> None:
        self._closed = True
        self._wake()
        self._worker.die()  # a worker exits when its node hangs up


class SimWorker:
    """One container_service: runs its frames' inputs one at a time, in order."""

    def __init__(self, world: WorkerWorld, runtime: SimContainerRuntime, name: str) -> None:
        self.world = world
        self.runtime = runtime
        self.name = name
        self.pid = next(world.pids)
        self.channel = SimChannel(self)
        self.alive = True
        self.job_id: str | None = None
        self._costs: JobCosts | None = None
        self._inbox: collections.deque[Sent] = collections.deque()
        self._frame: collections.deque[int] = collections.deque()
        self._running: tuple[int, float, int] | None = None
        """The input running now: index, when it started (virtual s), CPUs."""
        self._over_memory = False
        """The input running now uses more memory than the worker is held to."""
        self.ends_at = math.inf
        """When the input running now ends (virtual s)."""
        self._results: list[tuple[ResultItem, bytes]] = []
        self._oldest_result = 0.0
        self._busy_s = 0.0
        self._send([(Hello(self.pid), b"")])

    # From the node ------------------------------------------------------------------------
    def feed(self, messages: list[Sent]) -> None:
        """Messages from the node."""
        self._inbox.extend(messages)
        if self._running is None:
            self._work()

    def _work(self) -> None:
        """Go through the inbox until an input is running or nothing is left to do."""
        while self.alive and self._running is None:
            if self._frame:
                self._start(self._frame.popleft())
                return
            self._flush()  # a frame is done
            if not self._inbox:
                return
            message, _ = self._inbox.popleft()
            match message:
                case JobStart(job_id):
                    self._start_job(job_id)
                case Inputs(job_id, indices) if job_id == self.job_id:
                    self._frame.extend(indices)
                case EndJob(job_id) if job_id == self.job_id:
                    self.job_id, self._costs = None, None

    def _start_job(self, job_id: str) -> None:
        self.job_id = job_id
        self._costs = self.world.costs.get(job_id)
        self.world.recorder.node_got_job(self.runtime.node_id, job_id)
        if self._costs is None or not self._costs.function_loads:
            message = f"the function of job {job_id} did not load (as the scenario says)"
            self._costs = None
            self._send([(JobErrorReport(job_id, message), b"")])

    def _start(self, index: int) -> None:
        costs, job_id = self._costs, self.job_id
        if costs is None or job_id is None:
            text = b'{"type": "RuntimeError", "message": "no function", "traceback": ""}'
            self._results.append((ResultItem(index, "raised_text", len(text)), text))
            self._work()
            return
        now = self.world.clock.elapsed()
        cpus = self.runtime.cpus_of(self.name)
        self._running = (index, now, cpus)
        limit = self.runtime.memory_limit_of(self.name)
        uses = costs.memory_gb.get(index)
        self._over_memory = uses is not None and limit is not None and gib(uses) > limit
        self.runtime.check_memory(self.name)
        self.ends_at = now + costs.run_s[index]
        self.channel.due(self.ends_at)
        self.world.recorder.input_started(now, self.runtime.node_id, job_id, index, cpus)

    def finish_if_due(self) -> None:
        """Finish the input running, if its time has come."""
        now = self.world.clock.elapsed()
        if self._running is None or now < self.ends_at:
            return
        if self._over_memory:  # its runtime stops it, as Docker's limit or local's watcher
            self.runtime.out_of_memory(self.name)
            self.die()
            return
        assert self._costs is not None
        assert self.job_id is not None
        index, started, cpus = self._running
        self._running, self.ends_at = None, math.inf
        self.world.recorder.input_stopped(now, self.runtime.node_id, self.job_id, cpus)
        if not self._results:
            self._oldest_result = started
        if index in self._costs.raises:
            kind, result = "raised_text", raised(index)
        else:
            kind, result = "ok", b"r" * self._costs.result_bytes
        self._results.append((ResultItem(index, kind, len(result)), result))
        self._busy_s += now - started
        if results_due(len(self._results), now - self._oldest_result):
            self._flush()
        self._work()

    def _flush(self) -> None:
        if not self._results:
            return
        assert self.job_id is not None, "results come only from a job's inputs"
        items = tuple(item for item, _ in self._results)
        payload = b"".join(data for _, data in self._results)
        results = Results.of(self.job_id, items, self._busy_s)
        self._results, self._busy_s = [], 0.0
        self._send([(results, payload)])

    def _send(self, messages: list[Heard]) -> None:
        if self.alive:
            self.channel.put(messages)

    @property
    def busy(self) -> bool:
        return self._running is not None

    # Endings ------------------------------------------------------------------------------
    def die(self, *, leave_status: bool = True) -> None:
        """The container's process ends: the input it was running stops, unreported, and
        stays named in its status file; the node reads the end of the connection."""
        if not self.alive:
            return
        self.alive = False
        if self._running is not None:
            index, started, cpus = self._running
            self._running, self.ends_at = None, math.inf
            now = self.world.clock.elapsed()
            assert self.job_id is not None
            self.world.recorder.input_stopped(now, self.runtime.node_id, self.job_id, cpus)
            if leave_status:
                self.runtime.write_status(self.name, index, self.world.clock.epoch + started)
        self.channel.end()


@dataclass
class _Container:
    info: ContainerInfo
    status_file: str | None
    worker: SimWorker | None = None
    out_of_memory: bool = False


class SimContainerRuntime:
    """One node's containers. `connect` is the node's `connect_worker`: it waits for the
    container to come up (pulling its image first on a fresh node) and says hello."""

    def __init__(self, world: WorkerWorld, node_id: str, ram_gb: float) -> None:
        self.world = world
        self.node_id = node_id
        self.ram_bytes = gib(ram_gb)
        self._containers: dict[str, _Container] = {}
        self._limits_total: int | None = None
        """Every container's memory limit, added up (None: to count again)."""
        self._started_on: dict[int, str] = {}
        self._machine_gone = False
        """Port -> the container started on it last: the node connects right after."""
        self._coming_up: dict[str, tuple[float, trio.Event]] = {}
        """Per image: when the containers starting now are up, and the event that says so."""
        self._pulled: set[str] = set()

    async def start(
        self,
        spec: ContainerSpec,
        *,
        name: str,
        port: int,
        cpuset: frozenset[int],
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
    ) -> ContainerInfo:
        # No await in here: the node connects to this port before anything else runs.
        check_start(spec, name, port, cpuset, env or {})
        if name in self._containers:
            raise name_taken(name)
        info = ContainerInfo(name=name, image=spec.image, port=port, cpuset=frozenset(cpuset))
        status = (env or {}).get("BURLA_STATUS_FILE")
        self._containers[name] = _Container(info, status or None)
        self._limits_total = None
        self._started_on[port] = name
        return info

    async def connect(self, port: int, secret: str) -> WorkerChannel:
        """The simulated worker on `port`: in memory, so no caller but its node can reach
        it and `secret` is not checked."""
        name = self._started_on.pop(port, None)
        if name is None:
            raise BackendError(f"no container was started on port {port} of {self.node_id}")
        container = self._containers[name]
        await self._up(container.info.image).wait()
        if self._machine_gone:
            await anyio.sleep_forever()  # as the node's own process: it went with the machine
        if self._containers.get(name) is not container:
            raise BackendError(f"container {name} was stopped before its worker said hello")
        worker = SimWorker(self.world, self, name)
        container.worker = worker
        worker.channel.pid = worker.pid  # its hello, read as the node's connect reads it
        await worker.channel.receive()
        return worker.channel

    def _up(self, image: str) -> trio.Event:
        """Set when a container of `image` started now is up. Containers started together
        come up together (one timer for them all); the first ones on a node wait for the
        image to download."""
        now = self.world.clock.elapsed()
        coming = self._coming_up.get(image)
        if coming is not None and coming[0] >= now:
            return coming[1]
        sim_image = self.world.images[image]
        delay = sim_image.start_s.draw(self.world.rng)
        if image not in self._pulled:
            self._pulled.add(image)
            delay += sim_image.pull_s.draw(self.world.rng)
        event = trio.Event()
        self._coming_up[image] = (now + delay, event)
        self.world.timers.at(now + delay, event.set)
        return event

    async def stop(self, name: str) -> bool:
        container = self._containers.pop(name, None)
        self._limits_total = None
        if container is None:
            return False
        if container.worker is not None:
            container.worker.die()
        return True

    async def free_image(self, image: str) -> None:
        """The next container of `image` pulls it again, unless one still uses it."""
        if all(c.info.image != image for c in self._containers.values()):
            self._pulled.discard(image)

    async def set_cpuset(self, name: str, cpuset: frozenset[int]) -> ContainerInfo:
        container = self._find(name)
        check_cpuset(name, cpuset)
        container.info = ContainerInfo(
            name=name, image=container.info.image, port=container.info.port, cpuset=cpuset
        )
        self._limits_total = None
        return container.info

    async def set_memory(self, name: str, limit: int | None) -> ContainerInfo:
        """Recorded: an input that uses more than its worker's limit is stopped (see
        JobCosts.memory_gb)."""
        container = self._find(name)
        check_memory_limit(name, limit)
        container.info = replace(container.info, memory_limit=limit)
        self._limits_total = None
        return container.info

    async def list(self) -> list[ContainerInfo]:
        """Containers whose worker died are listed as exited."""
        containers = [self._containers[name] for name in sorted(self._containers)]
        return [
            c.info
            if c.worker is None or c.worker.alive
            else replace(c.info, running=False, out_of_memory=c.out_of_memory)
            for c in containers
        ]

    def _find(self, name: str) -> _Container:
        container = self._containers.get(name)
        if container is None:
            raise not_found(name)
        return container

    # For the simulation -----------------------------------------------------------------
    def cpus_of(self, name: str) -> int:
        container = self._containers.get(name)
        return len(container.info.cpuset) if container is not None else 1

    def memory_limit_of(self, name: str) -> int | None:
        container = self._containers.get(name)
        return container.info.memory_limit if container is not None else None

    def out_of_memory(self, name: str) -> None:
        """The container went over its memory limit: listed so once it exited."""
        container = self._containers.get(name)
        if container is not None:
            container.out_of_memory = True

    def check_memory(self, starting: str) -> None:
        """A worker starts an input: the workers running inputs must be held to no more
        memory, together, than the node has (as a real node's would swap or be killed)."""
        if self._limits_sum() <= self.ram_bytes:
            return  # all of them together fit: no look at each is needed (96 per input)
        held = sum(
            c.info.memory_limit or 0
            for name, c in self._containers.items()
            if c.worker is not None and c.worker.alive and (c.worker.busy or name == starting)
        )
        if held > self.ram_bytes:
            self.world.recorder.overcommitted.append(
                f"{self.node_id} held its busy workers to {held / 2**30:g} GB of "
                f"{self.ram_bytes / 2**30:g} GB"
            )

    def _limits_sum(self) -> int:
        """The memory limits of every container, added up (most containers' limits are
        set once per job, so this is counted again only after a change)."""
        if self._limits_total is None:
            self._limits_total = sum(c.info.memory_limit or 0 for c in self._containers.values())
        return self._limits_total

    def busy_workers(self) -> builtins.list[str]:
        """Names of workers running an input now, sorted."""
        return sorted(
            name
            for name, c in self._containers.items()
            if c.worker is not None and c.worker.alive and c.worker.busy
        )

    def crash(self, name: str) -> None:
        """The container's process dies (out of memory, a segfault); it stays listed."""
        container = self._containers.get(name)
        if container is not None and container.worker is not None:
            container.worker.die()

    def kill_all(self) -> None:
        """The machine is gone: every container with it."""
        self._machine_gone = True
        for container in self._containers.values():
            if container.worker is not None:
                container.worker.die(leave_status=False)
        self._containers.clear()

    def write_status(self, name: str, index: int, started_epoch: float) -> None:
        container = self._containers.get(name)
        if container is None or container.status_file is None:
            return
        Path(container.status_file).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(container.status_file, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, STATUS.pack(index, started_epoch), 0)
        finally:
            os.close(fd)
