"""The node's standby workers: one container per CPU per container spec, each pinned to
its own CPU, started, read from, stopped, and restarted in place when one dies."""

from __future__ import annotations

import contextlib
import math
import re
import secrets
import socket
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from burla.core.errors import BurlaError, NotFoundError
from burla.core.memory import gib
from burla.core.models import ContainerSpec, JobSpec, NodeType
from burla.core.protocols import Claim, ContainerRuntime
from burla.core.worker_wire import FromWorker
from burla.services.node_service.channel import WorkerChannel

RESTART_PAUSES_S = (0.5, 2.0, 8.0)
"""Pauses between tries to start a worker in place of one that died."""
EXIT_SEEN_TRIES = 40
EXIT_SEEN_PAUSE_S = 0.05
"""How long a dead worker's container may take to be listed as exited (Docker's is
recorded after its process is gone)."""

ConnectWorker = Callable[[int, str], Awaitable[WorkerChannel]]
"""Opens the connection to the worker listening on a port, with the secret it was started
with (the simulator's are in memory)."""
PickPort = Callable[[], int]
"""A port that nothing listens on now (the simulator's need no socket)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(eq=False)  # a worker is itself, not its fields: assignments look them up
class Worker:
    name: str
    spec: ContainerSpec
    port: int
    home: frozenset[int]
    """The CPU it is pinned to in standby."""
    cpuset: frozenset[int]
    status_file: Path
    channel: WorkerChannel | None = None
    inflight: dict[int, Claim] = field(default_factory=dict)
    batch: int = 1
    per_input_s: float = math.inf
    """How long its inputs of this job run, as measured; unknown until its first result."""
    memory_limit: int | None = None
    """Bytes of memory its runtime holds it to: the func_ram of the job it was last given."""


@dataclass(eq=False)
class _Starting:
    """Standby workers one start_standby still waits for, and the first that failed."""

    left: int = 0
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BurlaError | None = None


@dataclass(frozen=True)
class PoolHooks:
    """What the node does with what its workers say and how they end."""

    heard: Callable[[Worker, FromWorker, bytes], Awaitable[None]]
    """A worker sent a message."""
    lost: Callable[[Worker, bool | None, int | None], Awaitable[None]]
    """A worker went, before it is replaced: whether it was stopped to be restarted (None:
    it died, or was stopped past the job's timeout), and the input it timed out on."""
    replaced: Callable[[Worker, Worker], Awaitable[None]]
    """A worker that went runs again: the old one, and the new."""


class WorkerPool:
    def __init__(
        self,
        *,
        node_id: str,
        node_type: NodeType,
        specs: tuple[ContainerSpec, ...],
        runtime: ContainerRuntime,
        status_dir: Path,
        worker_env: Mapping[str, str],
        connect_worker: ConnectWorker,
        pick_port: PickPort,
        hooks: PoolHooks,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.specs = specs
        self.runtime = runtime
        self.status_dir = status_dir
        self.worker_env = dict(worker_env)
        self.connect_worker = connect_worker
        self.pick_port = pick_port
        self.hooks = hooks
        self.workers: dict[str, Worker] = {}
        self.closing = False
        self._tasks: TaskGroup | None = None
        self._ports: set[int] = set()
        self._timed_out: dict[str, int] = {}
        self._stopping: dict[str, bool] = {}  # stopped on purpose -> restart it?
        self._restarting: dict[str, anyio.Event] = {}  # set once the replacement runs

    def running(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.channel is not None]

    async def start_standby(self, tasks: TaskGroup) -> None:
        """Start what is missing of the standby containers. Returns once every one said
        hello (or raises the first error); the task that started each worker goes on
        reading from it: one task per worker, not one to start it and one to read (a node
        of 96 CPUs starts 96 at once)."""
        self._tasks = tasks
        wanted = [(spec, cpu) for spec in self.specs for cpu in range(self.node_type.cpus)]
        starting = _Starting()
        replaced: list[anyio.Event] = []
        for spec, cpu in wanted:
            name = f"{self.node_id}-{_slug(spec.image)}-{cpu}"
            restarting = self._restarting.get(name)
            if restarting is not None:  # a worker that died is being replaced already
                replaced.append(restarting)
            elif name not in self.workers or self.workers[name].channel is None:
                starting.left += 1
                tasks.start_soon(self._keep_worker, name, spec, cpu, starting)
        for replacement in replaced:
            await replacement.wait()
        if starting.left:
            await starting.done.wait()
        if starting.error is not None:
            raise starting.error

    async def _keep_worker(
        self, name: str, spec: ContainerSpec, cpu: int, starting: _Starting
    ) -> None:
        """Start a standby worker, then read from it for as long as it lives."""
        try:
            worker = await self._connect_worker(name, spec, frozenset({cpu}))
        except BurlaError as error:
            starting.error = starting.error or error
            return
        finally:
            starting.left -= 1
            if not starting.left:
                starting.done.set()
        await self._read_worker(worker)

    async def _start_worker(self, name: str, spec: ContainerSpec, home: frozenset[int]) -> None:
        worker = await self._connect_worker(name, spec, home)
        assert self._tasks is not None
        self._tasks.start_soon(self._read_worker, worker)

    async def _connect_worker(self, name: str, spec: ContainerSpec, home: frozenset[int]) -> Worker:
        old = self.workers.get(name)
        port = old.port if old else self._new_port()
        cpuset = old.cpuset if old else home
        status_file = self.status_dir / f"{name}.status"
        worker = Worker(name, spec, port, home, cpuset, status_file)
        self.workers[name] = worker
        secret = secrets.token_hex(16)  # this worker's own: it answers this node only
        env = {**self.worker_env, "BURLA_STATUS_FILE": str(status_file)}
        await self.runtime.start(
            spec,
            name=name,
            port=port,
            cpuset=cpuset,
            env={**env, "BURLA_WORKER_SECRET": secret},
        )
        worker.channel = await self.connect_worker(port, secret)
        return worker

    def _new_port(self) -> int:
        """A free port no other worker of this node has: ports picked one after another
        while none listens yet may repeat (a 96-CPU node's 96 picks often do)."""
        while (port := self.pick_port()) in self._ports:
            pass
        self._ports.add(port)
        return port

    async def _read_worker(self, worker: Worker) -> None:
        channel = worker.channel
        assert channel is not None
        while (heard := await channel.receive()) is not None:
            await self.hooks.heard(worker, *heard)
        await self._worker_gone(worker, channel)

    async def _worker_gone(self, worker: Worker, channel: WorkerChannel) -> None:
        await channel.aclose()
        worker.channel = None
        restart = self._stopping.pop(worker.name, None)
        if restart is False or self.closing:
            return  # the kill plan stopped it (reset starts it again), or the node is closing
        replaced = self._restarting[worker.name] = anyio.Event()
        try:
            await self._replace(worker, restart)
        finally:
            del self._restarting[worker.name]
            replaced.set()

    async def _replace(self, worker: Worker, restart: bool | None) -> None:
        """Let the node report why a worker went, then start a new one in its place."""
        await self.hooks.lost(worker, restart, self._timed_out.pop(worker.name, None))
        worker.inflight.clear()
        await self.runtime.stop(worker.name)
        worker.status_file.unlink(missing_ok=True)
        for pause in (*RESTART_PAUSES_S, None):
            try:
                await self._start_worker(worker.name, worker.spec, worker.cpuset)
                break
            except BurlaError:
                if pause is None:
                    raise  # the node cannot run workers: main_service sees it lost
                await anyio.sleep(pause)  # the container went before it said hello
        await self.hooks.replaced(worker, self.workers[worker.name])

    # Changing workers -------------------------------------------------------------------
    async def pin(self, worker: Worker, cpuset: frozenset[int]) -> None:
        # A container gone meanwhile has nothing to pin: its reader sees it go and
        # replaces it.
        with contextlib.suppress(NotFoundError):
            await self.runtime.set_cpuset(worker.name, cpuset)

    async def home_again(self) -> None:
        """Every worker back on its own CPU, as in standby."""
        for worker in list(self.workers.values()):
            if worker.cpuset != worker.home:
                worker.cpuset = worker.home
                if worker.channel is not None:
                    await self.runtime.set_cpuset(worker.name, worker.home)

    async def limit_memory(self, worker: Worker, job: JobSpec, limit: int | None = None) -> None:
        """Hold the worker to the job's func_ram (or `limit` bytes, for an input that
        needs more): its runtime stops it if it goes over."""
        limit = gib(job.func_ram) if limit is None else limit
        if worker.memory_limit != limit:
            try:
                await self.runtime.set_memory(worker.name, limit)
            except NotFoundError:
                return  # gone meanwhile: its reader sees it go and replaces it
            worker.memory_limit = limit

    async def out_of_memory(self, worker: Worker) -> bool:
        """Whether the runtime stopped the worker for going over its memory limit. A
        container's end may be recorded a moment after its connection closed."""
        if worker.memory_limit is None:
            return False
        for _ in range(EXIT_SEEN_TRIES):
            info = next((c for c in await self.runtime.list() if c.name == worker.name), None)
            if info is None or not info.running:
                return info is not None and info.out_of_memory
            await anyio.sleep(EXIT_SEEN_PAUSE_S)
        return False

    async def stop(self, worker: Worker, restart: bool) -> None:
        """Stop a worker on purpose: one to restart is replaced once gone (and is left be
        if it died meanwhile: what starts in its place is not what was to stop); one not
        to restart stays stopped until standby starts it again."""
        if restart and (self.workers.get(worker.name) is not worker or worker.channel is None):
            return
        self._stopping[worker.name] = restart
        await self.runtime.stop(worker.name)

    def stopping_overdue(self, worker: Worker) -> bool:
        """Whether the worker is being stopped for running past the job's timeout."""
        return worker.name in self._timed_out

    async def stop_overdue(self, name: str, index: int) -> None:
        """Stop a worker whose input `index` ran past the job's timeout; it is replaced,
        and reported timed out, once gone."""
        self._timed_out[name] = index
        await self.runtime.stop(name)

    async def drop_unwanted(self, busy: Collection[Worker] = ()) -> None:
        """Stop for good the workers of images the standby definition no longer keeps,
        but those `busy` with a job (a reset after it drops them)."""
        wanted = {spec.image for spec in self.specs}
        dropped: set[str] = set()
        for worker in list(self.workers.values()):
            if worker.spec.image not in wanted and worker not in busy:
                del self.workers[worker.name]
                if worker.channel is not None:
                    self._stopping[worker.name] = False
                await self.runtime.stop(worker.name)
                dropped.add(worker.spec.image)
        for image in dropped - {worker.spec.image for worker in self.workers.values()}:
            await self.runtime.free_image(image)  # its disk, if the node pulled it

    async def aclose(self) -> None:
        """Stop every worker for good: the node is going away."""
        self.closing = True
        for worker in self.workers.values():
            self._stopping[worker.name] = False
            await self.runtime.stop(worker.name)


def _slug(image: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "_", image).strip("_") or "image"
