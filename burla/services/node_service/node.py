"""What a node does: keep warm workers, and run one job at a time on them.

The node claims its job's inputs from the Store in batches, feeds them to its workers
over loopback, writes results back in batches and reports to main_service: which worker
holds which input, results, printed lines, workers that died or ran past the timeout.
main_service decides what each of those means for the job (core.inputs); the node only
carries out and reports. It never unpickles what passes through it.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
import socket
import tarfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from burla.core import wire
from burla.core.backoff import Backoff
from burla.core.clock import Clock
from burla.core.errors import BurlaError, NotFoundError
from burla.core.kill_plan import plan_containers
from burla.core.models import ContainerSpec, JobSpec, NodeType
from burla.core.protocols import BlobStore, Claim, ContainerInfo, ContainerRuntime, Store
from burla.core.scheduling import slots_on
from burla.core.timeouts import WorkerLook, look_every_s, overdue
from burla.core.worker_wire import EndJob, InputItem, Inputs, JobStart, Lines, Results
from burla.services.container_service.status import read_status
from burla.services.node_service.channel import Sent, WorkerChannel
from burla.services.node_service.packages import PackageCache
from burla.services.store_keys import INLINE, LEASE_S, queue_name, result_key

RESTART_PAUSES_S = (0.5, 2.0, 8.0)
"""Pauses between tries to start a worker in place of one that died."""

TARGET_BATCH_S = 0.005
"""Work sent to a worker in one frame, in seconds of its measured run time."""

MAX_BATCH = 256
PREFETCH_BELOW_S = 1.0
"""A worker whose inputs run shorter than this gets a second frame queued behind the one
it runs, so it never waits for the node. Longer inputs are not held back that way: one
queued behind a 4-minute input would wait 4 minutes while nodes that join later idle."""
BLOB_URL_S = 3600.0
IDLE_POLL_FIRST_S = 0.01
IDLE_POLL_MAX_S = 5.0
"""First and longest wait between two looks at the job's queue once it was found empty
(inputs come back to it only when a worker or node elsewhere is lost)."""
REPORT_INTERVAL_S = 0.003
"""Shortest time between two reports to main_service."""
EXIT_SEEN_TRIES = 40
EXIT_SEEN_PAUSE_S = 0.05
"""How long a dead worker's container may take to be listed as exited (Docker's is
recorded after its process is gone)."""

Report = Callable[[dict[str, Any], bytes], Awaitable[None]]
"""Sends one report (a frame's header and payload) to main_service."""
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


@dataclass
class Assignment:
    job: JobSpec
    function: bytes
    workers: list[Worker]
    pending: list[Claim] = field(default_factory=list)
    ended: bool = False
    failed: bool = False
    wake: anyio.Event = field(default_factory=anyio.Event)
    room: dict[str, tuple[Worker, int]] = field(default_factory=dict)
    """Workers with room for more inputs, and how many, as of the feed's last look."""
    changed: dict[str, Worker] = field(default_factory=dict)
    """Workers whose room may have changed since (results came, inputs went, a worker
    was replaced): a wake of the feed looks at these only, not at every worker."""
    look_again_at: float = 0.0
    """When the feed claims from the queue again after finding it empty."""
    claimed: int = 0
    """Inputs this node has claimed for the job, counting any claimed again."""
    packages_path: str | None = None
    """The folder of the job's own packages, which its workers put on their path."""
    token: str | None = None
    """The job's token, which its workers' code calls the cluster with."""

    def __post_init__(self) -> None:
        self.changed = {w.name: w for w in self.workers}


class NodeService:
    def __init__(
        self,
        *,
        node_id: str,
        node_type: NodeType,
        containers: tuple[ContainerSpec, ...],
        runtime: ContainerRuntime,
        store: Store,
        blobs: BlobStore,
        report: Report,
        clock: Clock,
        status_dir: Path,
        worker_env: Mapping[str, str] | None = None,
        connect_worker: ConnectWorker = WorkerChannel.connect,
        pick_port: PickPort = free_port,
        package_dir: Path | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        """`package_dir` holds the packages jobs need (default: beside `status_dir`); a
        worker must see it at the same path."""
        self.node_id = node_id
        self.node_type = node_type
        self.lease_s = lease_s
        self.specs = containers
        self.runtime = runtime
        self.store = store
        self.blobs = blobs
        self.report = report
        self.clock = clock
        self.status_dir = status_dir
        self.worker_env = dict(worker_env or {})
        self.connect_worker = connect_worker
        self.pick_port = pick_port
        self.packages = PackageCache(package_dir or status_dir.parent / "packages", blobs)
        self._ports: set[int] = set()
        self.workers: dict[str, Worker] = {}
        self.assignment: Assignment | None = None
        self._tasks: TaskGroup | None = None
        self._events: list[wire.NodeReport] = []
        self._payloads: list[bytes] = []
        self._done: list[tuple[str, int, bytes, Claim]] = []
        self._report_ready = anyio.Event()
        self._news = False
        """Urgent events are queued that no report has carried yet."""
        self._flushing = False
        self._last_report = -math.inf
        self._timed_out: dict[str, int] = {}
        self._stopping: dict[str, bool] = {}  # stopped on purpose -> restart it?
        self._restarting: dict[str, anyio.Event] = {}  # set once the replacement runs
        self.closing = False

    # Standby ---------------------------------------------------------------------------
    async def run(self, tasks: TaskGroup) -> None:
        """Start the standby containers and the node's background loops."""
        self._tasks = tasks
        await self.start_standby()
        tasks.start_soon(self._flush_reports)
        tasks.start_soon(self._renew_leases)

    async def start_standby(self) -> None:
        """One container per CPU per container spec, each pinned to its own CPU. Returns
        once every one said hello (or raises the first error); the task that started each
        worker goes on reading from it: one task per worker, not one to start it and one
        to read (a node of 96 CPUs starts 96 at once)."""
        assert self._tasks is not None
        wanted = [(spec, cpu) for spec in self.specs for cpu in range(self.node_type.cpus)]
        starting = _Starting()
        async with anyio.create_task_group() as group:
            for spec, cpu in wanted:
                name = f"{self.node_id}-{_slug(spec.image)}-{cpu}"
                restarting = self._restarting.get(name)
                if restarting is not None:  # a worker that died is being replaced already
                    group.start_soon(restarting.wait)
                elif name not in self.workers or self.workers[name].channel is None:
                    starting.left += 1
                    self._tasks.start_soon(self._keep_worker, name, spec, cpu, starting)
            if starting.left:
                await starting.done.wait()
        if starting.error is not None:
            raise starting.error

    async def set_containers(self, specs: tuple[ContainerSpec, ...]) -> None:
        """A new standby definition's container specs: start the containers it adds."""
        self.specs = specs
        await self.start_standby()

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

    # Jobs ------------------------------------------------------------------------------
    async def assign(
        self,
        job: JobSpec,
        function: bytes | str,
        workers: int,
        packages: Sequence[str] = (),
        token: str | None = None,
    ) -> None:
        """Run the job on `workers` of this node's warm containers; stop the rest.

        `function` is the pickled function, or its key in the blob store; `packages` the
        blob store keys of the packages it needs, built already; `token` the job's token
        for its workers. A node runs one
        job at a time: a job still assigned is over (main_service moved on), so it ends,
        and the node is reset, first."""
        if self.assignment is not None:
            await self.reset(self.assignment.job.job_id, cancel=True)
        packages_path: str | None = None
        if packages:
            try:
                packages_path = str(await self.packages.environment(packages))
            except (BurlaError, OSError, tarfile.TarError) as error:
                # The job cannot run here, but the node is fine: the job fails, not the node.
                self.assignment = Assignment(job, b"", [], failed=True)
                message = f"node {self.node_id} could not set up the job's packages: {error}"
                self._event(wire.JobErrorReport(job.job_id, message))
                await self._report_news()
                return
        image = job.image or self.specs[0].image
        if image not in {spec.image for spec in self.specs}:
            # Added to the standby definition after this node read it: start it now.
            await self.set_containers((*self.specs, ContainerSpec(image=image)))
        infos = [
            ContainerInfo(name=w.name, image=w.spec.image, port=w.port, cpuset=w.cpuset)
            for w in self.workers.values()
            if w.channel is not None
        ]
        plan = plan_containers(
            self.node_type.cpus,
            infos,
            image=image,
            func_cpu=job.func_cpu,
            max_workers=slots_on(self.node_type, job),
        )
        if isinstance(function, str):
            function = await self.blobs.get(function)
        kept = [self.workers[k.container.name] for k in plan.keep]
        # Workers beyond the node's share stay warm and idle: killing them would cost a
        # restart when the job ends.
        assignment = Assignment(
            job, function, kept[:workers], packages_path=packages_path, token=token
        )
        self.assignment = assignment
        async with anyio.create_task_group() as group:
            for doomed in plan.kill:
                group.start_soon(self._stop_worker, self.workers[doomed.name], False)
            for keep in plan.keep:
                worker = self.workers[keep.container.name]
                if worker.cpuset != keep.cpuset:
                    worker.cpuset = keep.cpuset
                    group.start_soon(self._pin, worker, keep.cpuset)
            for worker in assignment.workers:
                group.start_soon(self._limit_memory, worker, job)
        for worker in kept:
            worker.batch, worker.per_input_s = 1, math.inf  # a new function, a new pace
            await self._send_job(worker)
        assert self._tasks is not None
        self._tasks.start_soon(self._feed, assignment)
        if job.timeout_s is not None:
            self._tasks.start_soon(self._watch_timeouts, assignment)

    async def end(self, job_id: str, *, cancel: bool) -> None:
        """Stop work on the job. On cancel, workers still running its inputs are stopped."""
        assignment = self.assignment
        if assignment is None or assignment.job.job_id != job_id or assignment.ended:
            return
        assignment.ended = True
        assignment.wake.set()
        if assignment.pending:
            receipts = [c.receipt for c in assignment.pending]
            assignment.pending = []
            await self.store.renew(queue_name(job_id), receipts, lease_s=0)
        end_job: list[Sent] = [(EndJob(job_id), b"")]
        async with anyio.create_task_group() as group:
            for worker in assignment.workers:
                if cancel and worker.inflight:
                    group.start_soon(self._stop_worker, worker, True)
                elif worker.channel is not None:
                    await self._send(worker, end_job)  # one small frame: no task of its own

    async def reset(self, job_id: str | None, *, cancel: bool) -> None:
        """End job `job_id`, then back to standby: every container of every spec, each on
        its own CPU again. With `cancel`, workers still running its inputs are stopped. A
        reset for a job that is no longer assigned does nothing: the node moved on."""
        if job_id is not None and (self.assignment is None or self.assignment.job.job_id != job_id):
            return
        if self.assignment is not None:
            await self.end(self.assignment.job.job_id, cancel=cancel)
        for worker in list(self.workers.values()):
            if worker.cpuset != worker.home:
                worker.cpuset = worker.home
                if worker.channel is not None:
                    await self.runtime.set_cpuset(worker.name, worker.home)
        await self.start_standby()
        self.assignment = None

    def health(self) -> dict[str, Any]:
        running = sum(1 for w in self.workers.values() if w.channel is not None)
        job_id = self.assignment.job.job_id if self.assignment else None
        return {"node_id": self.node_id, "job_id": job_id, "workers": running}

    async def aclose(self) -> None:
        """Stop every worker for good: the node is going away."""
        self.closing = True
        for worker in self.workers.values():
            self._stopping[worker.name] = False
            await self.runtime.stop(worker.name)

    async def kill_worker(self, name: str) -> None:
        """Stop a worker main_service gave up on (a timeout it saw); a fresh one replaces it.
        One gone already is being replaced, and _stop_worker leaves its replacement be."""
        worker = self.workers.get(name)
        if worker is not None:
            await self._stop_worker(worker, True)

    # Feeding workers -------------------------------------------------------------------
    async def _feed(self, assignment: Assignment) -> None:
        job_id = assignment.job.job_id
        idle = Backoff(IDLE_POLL_FIRST_S, IDLE_POLL_MAX_S)
        while not assignment.ended and not assignment.failed:
            self._look_again(assignment)
            wanted = sum(free for _, free in assignment.room.values()) - len(assignment.pending)
            if wanted > 0 and self.clock.now() >= assignment.look_again_at:
                claims = await self.store.claim(
                    queue_name(job_id), limit=wanted, lease_s=self.lease_s
                )
                assignment.pending += claims
                assignment.claimed += len(claims)
                if len(claims) < wanted or assignment.claimed >= assignment.job.n_inputs:
                    # The queue is empty for now (or must be: this node has had every
                    # input). Inputs come back to it only from a worker or node that was
                    # lost, so it is looked at again after a pause that grows, not at
                    # every result (most results of a job come after this).
                    assignment.look_again_at = self.clock.now() + idle.pause()
                else:
                    idle.reset()
                    assignment.look_again_at = 0.0
            if assignment.pending:
                await self._dispatch(assignment)
                if assignment.pending and assignment.room:
                    continue  # more to hand out at once
            pause = assignment.look_again_at - self.clock.now()
            if pause > 0 and not assignment.pending:
                with anyio.move_on_after(pause):
                    await assignment.wake.wait()
            else:
                await assignment.wake.wait()
            if assignment.wake.is_set():
                assignment.wake = anyio.Event()

    def _look_again(self, assignment: Assignment) -> None:
        """Bring `assignment.room` up to date for the workers that changed."""
        for name, worker in assignment.changed.items():
            free = self._room(worker) if worker.channel is not None else 0
            if free:
                assignment.room[name] = (worker, free)
            else:
                assignment.room.pop(name, None)
        assignment.changed.clear()

    def _room(self, worker: Worker) -> int:
        """Inputs the worker can take now: a frame of work, and a second one behind it
        while its inputs are short. Whole frames only: results come back a few at a time
        (container_service.worker.SEND_EVERY), and a refill after each few would cut the
        frames down to that size."""
        frames = 2 if worker.per_input_s < PREFETCH_BELOW_S else 1
        free = frames * worker.batch - len(worker.inflight)
        return free if free >= worker.batch else 0

    async def _dispatch(self, assignment: Assignment) -> None:
        job_id = assignment.job.job_id
        for worker, free in list(assignment.room.values()):
            if not assignment.pending:
                break
            if worker.channel is None:  # gone; its replacement will be looked at
                assignment.room.pop(worker.name, None)
                continue
            take = min(free, worker.batch, len(assignment.pending))
            assignment.changed[worker.name] = worker
            claims, assignment.pending = assignment.pending[:take], assignment.pending[take:]
            payloads: list[bytes] = []
            items: list[InputItem] = []
            for claim in claims:
                index = int(claim.item_id)
                worker.inflight[index] = claim
                if claim.data[:1] == INLINE:
                    payloads.append(claim.data[1:])
                    items.append(InputItem(index, len(claim.data) - 1, None))
                else:  # a big input: the worker fetches it from the blob store itself
                    key = claim.data[1:].decode()
                    url = await self.blobs.signed_url(key, method="GET", expires_s=BLOB_URL_S)
                    items.append(InputItem(index, 0, url))
            indices = tuple(item.index for item in items)
            receipts = tuple(c.receipt for c in claims)
            claimed = wire.ClaimReport(job_id, worker.name, indices, receipts)
            self._event(claimed, urgent=False)  # goes with the results, or a death
            await self._send(worker, [(Inputs(job_id, tuple(items)), b"".join(payloads))])

    async def _send_job(self, worker: Worker) -> None:
        assignment = self.assignment
        if assignment is None or assignment.ended or worker not in assignment.workers:
            return
        job = JobStart(assignment.job.job_id, assignment.packages_path, assignment.token)
        await self._send(worker, [(job, assignment.function)])

    async def _send(self, worker: Worker, frames: list[Sent]) -> None:
        channel = worker.channel
        if channel is None:
            return
        # A worker that is gone is noticed and reported by its reader.
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await channel.send(frames)

    # Hearing from workers --------------------------------------------------------------
    async def _read_worker(self, worker: Worker) -> None:
        channel = worker.channel
        assert channel is not None
        while (heard := await channel.receive()) is not None:
            message, payload = heard
            match message:
                case Results():
                    self._take_results(worker, message, payload)
                case Lines(job_id=str(job_id)):  # lines printed between jobs go nowhere
                    for line in message.items:
                        self._event(wire.LineReport(job_id, line.index, line.stream, line.text))
                case wire.JobErrorReport():
                    self._job_error(message.job_id, message.message)
            if self._news:
                await self._report_news()
        await self._worker_gone(worker, channel)

    def _take_results(self, worker: Worker, results: Results, payload: bytes) -> None:
        job_id, items = results.job_id, results.items
        offset = 0
        for item in items:
            data = payload[offset : offset + item.size]
            offset += item.size
            claim = worker.inflight.pop(item.index, None)
            if claim is None:
                continue  # the job ended or was given up on meanwhile
            if item.kind == "ok":
                self._done.append((job_id, item.index, data, claim))
            report = wire.ResultReport(job_id, worker.name, item.index, item.kind, item.size)
            self._event(report, data)
        # Size the next frames so that each holds about TARGET_BATCH_S of work.
        if items:
            per_input = max(results.busy_s, 1e-7) / len(items)
            worker.per_input_s = per_input
            worker.batch = max(1, min(MAX_BATCH, math.ceil(TARGET_BATCH_S / per_input)))
        assignment = self.assignment
        if assignment is not None:
            if assignment.job.job_id == job_id:
                assignment.changed[worker.name] = worker
            # The feed has nothing to do before the worker has room for a whole frame,
            # and while the queue was found empty it looks again in a while.
            wanted = assignment.pending or self.clock.now() >= assignment.look_again_at
            if wanted and self._room(worker):
                assignment.wake.set()

    def _job_error(self, job_id: str, message: str) -> None:
        assignment = self.assignment
        if assignment is None or assignment.job.job_id != job_id or assignment.failed:
            return
        assignment.failed = True
        self._event(wire.JobErrorReport(assignment.job.job_id, message))

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
        """Report why a worker went (unless it was stopped on purpose), then start a new one
        in its place and give it the job it had."""
        assignment = self.assignment
        job_id = assignment.job.job_id if assignment else None
        status = read_status(worker.status_file)
        timed_out = self._timed_out.pop(worker.name, None)
        if restart is None and (worker.inflight or status is not None):
            if timed_out is not None:
                self._event(wire.TimeoutReport(job_id, worker.name, timed_out))
            else:
                running = status.index if status else None
                out_of_memory = await self._out_of_memory(worker)
                self._event(wire.DeathReport(job_id, worker.name, running, out_of_memory))
            await self._report_news()
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
        replacement = self.workers[worker.name]
        assignment = self.assignment
        if assignment is not None and worker in assignment.workers:
            assignment.workers[assignment.workers.index(worker)] = replacement
            assignment.changed[replacement.name] = replacement
            await self._limit_memory(replacement, assignment.job)
            await self._send_job(replacement)
            assignment.wake.set()

    async def _pin(self, worker: Worker, cpuset: frozenset[int]) -> None:
        # A container gone meanwhile has nothing to pin: its reader sees it go and
        # replaces it.
        with contextlib.suppress(NotFoundError):
            await self.runtime.set_cpuset(worker.name, cpuset)

    async def _limit_memory(self, worker: Worker, job: JobSpec) -> None:
        """Hold the worker to the job's func_ram: its runtime stops it if it goes over."""
        limit = int(job.func_ram * 2**30)
        if worker.memory_limit != limit:
            try:
                await self.runtime.set_memory(worker.name, limit)
            except NotFoundError:
                return  # gone meanwhile: its reader sees it go and replaces it
            worker.memory_limit = limit

    async def _out_of_memory(self, worker: Worker) -> bool:
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

    async def _stop_worker(self, worker: Worker, restart: bool) -> None:
        if restart and (self.workers.get(worker.name) is not worker or worker.channel is None):
            return  # it died meanwhile: what starts in its place is not what was to stop
        self._stopping[worker.name] = restart
        await self.runtime.stop(worker.name)

    async def _watch_timeouts(self, assignment: Assignment) -> None:
        """Stop the workers whose input ran past the job's timeout (core.timeouts)."""
        limit = assignment.job.timeout_s
        assert limit is not None
        while not assignment.ended:
            await anyio.sleep(look_every_s(limit))
            looks = [_look(worker) for worker in assignment.workers]
            for stop in overdue(looks, self.clock.now(), limit):
                self._timed_out[stop.worker] = stop.index
                await self.runtime.stop(stop.worker)

    # Reporting -------------------------------------------------------------------------
    def _event(self, event: wire.NodeReport, payload: bytes = b"", *, urgent: bool = True) -> None:
        """Queue an event for main_service; one that is not urgent waits for the next. The
        task that queued an urgent one then calls _report_news."""
        self._events.append(event)
        if payload:
            self._payloads.append(payload)
        if urgent:
            self._news = True

    async def _report_news(self) -> None:
        """Report as soon as there is news, from the task that heard it (no wake-up of
        another task per result), but at most once per REPORT_INTERVAL_S and one report
        at a time: what comes meanwhile is left to _flush_reports, so batches grow."""
        if self._flushing or self.clock.now() < self._last_report + REPORT_INTERVAL_S:
            self._report_ready.set()
        elif self._news:
            await self.flush()

    async def _flush_reports(self) -> None:
        """Report the news _report_news left: once the interval has passed, or once the
        report on its way is out."""
        while True:
            await self._report_ready.wait()
            self._report_ready = anyio.Event()
            wait = self._last_report + REPORT_INTERVAL_S - self.clock.now()
            if wait > 0:
                await anyio.sleep(wait)
            if self._news and not self._flushing:
                await self.flush()

    async def flush(self) -> None:
        """Make finished results durable, then tell main_service everything new."""
        self._flushing, self._news, self._last_report = True, False, self.clock.now()
        try:
            await self._flush()
        finally:
            self._flushing = False
            if self._news:
                self._report_ready.set()  # what came meanwhile goes next

    async def _flush(self) -> None:
        events, payloads, done = self._events, self._payloads, self._done
        self._events, self._payloads, self._done = [], [], []
        by_job: dict[str, list[tuple[int, bytes, Claim]]] = {}
        for job_id, index, data, claim in done:
            by_job.setdefault(job_id, []).append((index, data, claim))
        for job_id, finished in by_job.items():
            docs = {result_key(job_id, i): {"kind": "ok", "payload": d} for i, d, _ in finished}
            await self.store.put_many(docs, create_only=True)
            await self.store.ack(queue_name(job_id), [claim.receipt for _, _, claim in finished])
        if events:
            header = {"node_id": self.node_id, "events": [e.to_json() for e in events]}
            await self.report(header, b"".join(payloads))

    async def _renew_leases(self) -> None:
        while True:
            await anyio.sleep(self.lease_s / 3)
            assignment = self.assignment
            if assignment is None or assignment.ended:
                continue
            held = [c.receipt for c in assignment.pending]
            held += [c.receipt for w in assignment.workers for c in w.inflight.values()]
            if held:
                await self.store.renew(
                    queue_name(assignment.job.job_id), held, lease_s=self.lease_s
                )


def _look(worker: Worker) -> WorkerLook:
    status = read_status(worker.status_file)
    if status is None:
        return WorkerLook(worker.name, None, 0.0, bool(worker.inflight))
    return WorkerLook(worker.name, status.index, status.started_at, bool(worker.inflight))


def _slug(image: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "_", image).strip("_") or "image"
