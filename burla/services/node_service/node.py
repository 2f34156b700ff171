"""What a node does: keep warm workers, and run one job at a time on them.

The node takes the inputs that came with its job's assignment and claims the rest from
the Store in batches, feeds them to its workers over loopback, writes results back in
batches and reports to main_service: which worker holds which input, results, printed
lines, workers that died or ran past the timeout. main_service decides what each of
those means for the job (core.inputs); the node only carries out and reports. It never
unpickles what passes through it.

A job's path: `assign` fits the standby workers to it (worker_pool), `feed` hands them
its inputs and takes their results, and `reports` tells main_service.
"""

from __future__ import annotations

import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from burla.core import report_wire, worker_wire
from burla.core.clock import Clock
from burla.core.environment import PACKAGES_LIMIT_BYTES
from burla.core.errors import BurlaError, InvalidRequestError
from burla.core.kill_plan import KillPlan, plan_containers
from burla.core.memory import GIB, gib
from burla.core.models import ContainerSpec, JobSpec, NodeType
from burla.core.protocols import BlobStore, Claim, ContainerInfo, ContainerRuntime, Store
from burla.core.scheduling import slots_on
from burla.core.worker_wire import FromWorker, ResultItem, Results
from burla.release import build_id
from burla.services.container_service.status import read_spool, read_status, spool_path
from burla.services.node_service.channel import WorkerChannel
from burla.services.node_service.feed import Assignment, Feed
from burla.services.node_service.packages import PackageCache
from burla.services.node_service.reports import Reporter, SendReport
from burla.services.node_service.worker_pool import (
    ConnectWorker,
    PickPort,
    PoolHooks,
    Worker,
    WorkerPool,
    free_port,
)
from burla.services.store_keys import LEASE_S

GIVE_BACK_S = 5.0


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
        report: SendReport,
        clock: Clock,
        status_dir: Path,
        worker_env: Mapping[str, str] | None = None,
        connect_worker: ConnectWorker = WorkerChannel.connect,
        pick_port: PickPort = free_port,
        package_dir: Path | None = None,
        lease_s: float = LEASE_S,
        package_limit_bytes: int = PACKAGES_LIMIT_BYTES,
    ) -> None:
        """`package_dir` holds the packages jobs need (default: beside `status_dir`); a
        worker must see it at the same path. After each job the unpacked packages are
        kept within `package_limit_bytes`, least recently used first."""
        self.package_limit_bytes = package_limit_bytes
        self.node_id = node_id
        self.node_type = node_type
        self.blobs = blobs
        self.packages = PackageCache(package_dir or status_dir.parent / "packages", blobs)
        self.reporter = Reporter(node_id, store, blobs, report, clock)
        hooks = PoolHooks(heard=self._heard, lost=self._lost, replaced=self._replaced)
        self.pool = WorkerPool(
            node_id=node_id,
            node_type=node_type,
            specs=containers,
            runtime=runtime,
            status_dir=status_dir,
            worker_env=worker_env or {},
            connect_worker=connect_worker,
            pick_port=pick_port,
            hooks=hooks,
        )
        self.feed = Feed(
            store=store,
            blobs=blobs,
            clock=clock,
            lease_s=lease_s,
            pool=self.pool,
            reporter=self.reporter,
        )
        self._tasks: TaskGroup | None = None

    async def run(self, tasks: TaskGroup) -> None:
        """Start the standby containers and the node's background loops."""
        self._tasks = tasks
        await self.start_standby()
        tasks.start_soon(self.reporter.run)
        tasks.start_soon(self.feed.renew_leases)

    def _running(self) -> TaskGroup:
        """The node's task group; a request that needs it before run() is refused."""
        if self._tasks is None:
            raise InvalidRequestError("node_service is not running yet: ask again once it is")
        return self._tasks

    async def start_standby(self) -> None:
        """One container per CPU per container spec, each pinned to its own CPU; returns
        once every one said hello (or raises the first error)."""
        await self.pool.start_standby(self._running())

    async def set_containers(self, specs: tuple[ContainerSpec, ...]) -> None:
        """A new standby definition's container specs: stop the containers of images it
        dropped (those running a job once it ends), start those it adds."""
        self._running()  # refused before anything changes
        self.pool.specs = specs
        assignment = self.feed.assignment
        busy = assignment.workers if assignment is not None and not assignment.ended else []
        await self.pool.drop_unwanted(busy)
        await self.start_standby()

    # Jobs ------------------------------------------------------------------------------
    async def assign(
        self,
        job: JobSpec,
        function: bytes | str,
        workers: int,
        packages: Sequence[str] = (),
        token: str | None = None,
        run_length: int = 1,
        handed: Sequence[Claim] = (),
        *,
        results_every_s: float = 0.0,
    ) -> None:
        """Run the job on `workers` of this node's warm containers; stop the rest.

        `function` is the pickled function, or its key in the blob store; `packages` the
        blob store keys of the packages it needs, built already; `token` the job's token
        for its workers; `run_length` the most inputs one item of its queue holds;
        `handed` its inputs that came with the assignment (services.handed_inputs), which
        the node starts first; `results_every_s` how often it writes and reports their
        results at most while busy (Reporter.pace). A node runs one job at a time: a job
        still assigned is over (main_service moved on), so it ends, and the node is
        reset, first."""
        if self.feed.assignment is not None:
            await self.reset(self.feed.assignment.job.job_id, cancel=True)
        self.reporter.pace(results_every_s)
        packages_path: str | None = None
        if packages:
            try:
                packages_path = str(await self.packages.environment(packages))
            except (BurlaError, OSError, tarfile.TarError) as error:
                # The job cannot run here, but the node is fine: the job fails, not the node.
                self.feed.assignment = Assignment(job, b"", [], failed=True)
                message = f"node {self.node_id} could not set up the job's packages: {error}"
                self.reporter.event(worker_wire.JobErrorReport(job.job_id, message))
                await self.reporter.report_news()
                return
        tasks = self._running()
        plan = await self._plan(job)
        if isinstance(function, str):
            function = await self.blobs.get(function)
        kept = [self.pool.workers[k.container.name] for k in plan.keep]
        # Workers beyond the node's share stay warm and idle: killing them would cost a
        # restart when the job ends.
        assignment = Assignment(
            job,
            function,
            kept[:workers],
            packages_path=packages_path,
            token=token,
            run_length=run_length,
            pending=list(handed),
            claimed=len(handed),
        )
        self.feed.assignment = assignment
        await self._fit(plan, assignment)
        await self.feed.start(assignment, tasks)

    async def _plan(self, job: JobSpec) -> KillPlan:
        """Which standby workers run the job, on which CPUs, and which stop (core.kill_plan)."""
        image = job.image or self.pool.specs[0].image
        if image not in {spec.image for spec in self.pool.specs}:
            # Added to the standby definition after this node read it: start it now.
            await self.set_containers((*self.pool.specs, ContainerSpec(image=image)))
        infos = [
            ContainerInfo(name=w.name, image=w.spec.image, port=w.port, cpuset=w.cpuset)
            for w in self.pool.running()
        ]
        return plan_containers(
            self.node_type.cpus,
            infos,
            image=image,
            func_cpu=job.func_cpu,
            max_workers=slots_on(self.node_type, job),
        )

    async def _fit(self, plan: KillPlan, assignment: Assignment) -> None:
        """Carry out the plan: stop the workers it kills, pin the ones it keeps to their
        CPUs, and hold the job's workers to its func_ram."""
        workers = self.pool.workers
        limit = gib(assignment.job.func_ram)
        moved = [keep for keep in plan.keep if workers[keep.container.name].cpuset != keep.cpuset]
        held = [worker for worker in assignment.workers if worker.memory_limit != limit]
        if not (plan.kill or moved or held):  # a job like the last: nothing to wait for
            return
        async with anyio.create_task_group() as group:
            for doomed in plan.kill:
                group.start_soon(self.pool.stop, workers[doomed.name], False)
            for keep in moved:
                worker = workers[keep.container.name]
                worker.cpuset = keep.cpuset
                group.start_soon(self.pool.pin, worker, keep.cpuset)
            for worker in held:
                group.start_soon(self.pool.limit_memory, worker, assignment.job)

    async def end(self, job_id: str, *, cancel: bool) -> None:
        """Stop work on the job. On cancel, workers still running its inputs are stopped."""
        await self.feed.end(job_id, cancel=cancel)

    async def reset(self, job_id: str | None, *, cancel: bool) -> None:
        """End job `job_id`, then back to standby: every container of every spec, each on
        its own CPU again. With `cancel`, workers still running its inputs are stopped. A
        reset for a job that is no longer assigned does nothing: the node moved on."""
        assignment = self.feed.assignment
        if job_id is not None and (assignment is None or assignment.job.job_id != job_id):
            return
        if assignment is not None:
            await self.feed.end(assignment.job.job_id, cancel=cancel)
            await self.reporter.report_finished()  # before main_service hears of the reset
        await self.pool.home_again()
        await self.pool.drop_unwanted()
        await self.start_standby()
        self.feed.assignment = None
        if self.packages.grown:
            await self.prune_packages(self.package_limit_bytes)

    async def prune_packages(self, max_bytes: int) -> None:
        """Keep the package cache within `max_bytes`; never what the job running uses."""
        assignment = self.feed.assignment
        in_use = [Path(assignment.packages_path)] if assignment and assignment.packages_path else []
        await self.packages.prune(max_bytes, in_use)

    def health(self) -> dict[str, Any]:
        job_id = self.feed.assignment.job.job_id if self.feed.assignment else None
        return {
            "node_id": self.node_id,
            "job_id": job_id,
            "workers": len(self.pool.running()),
            "build": build_id(),
        }

    async def aclose(self) -> None:
        """Stop every worker for good: the node is going away. What they finished is
        written to the Store, and the inputs the node still held go back to the queue, so
        that a job that goes on (taken over by a new main_service) runs them elsewhere at
        once; a node that cannot reach the Store within GIVE_BACK_S leaves them to their
        leases."""
        await self.pool.aclose()
        with anyio.move_on_after(GIVE_BACK_S):
            saved = await self.reporter.save_finished()
            await self.feed.give_back(but=saved)

    async def kill_worker(self, name: str, job_id: str) -> None:
        """Stop a worker main_service gave up on (its job was canceled); a fresh one
        replaces it. One gone already is being replaced, and the pool leaves its
        replacement be; a node that has moved on from the job (a reset stopped what ran
        it) leaves its workers be: one of that name may run the next job's inputs."""
        assignment = self.feed.assignment
        if assignment is None or assignment.ended or assignment.job.job_id != job_id:
            return
        worker = self.pool.workers.get(name)
        if worker is not None:
            await self.pool.stop(worker, True)

    # What workers say, and how they end ------------------------------------------------
    async def _heard(self, worker: Worker, message: FromWorker, payload: bytes) -> None:
        self.feed.heard(worker, message, payload)
        if self.reporter.news:
            await self.reporter.report_news()

    async def _lost(self, worker: Worker, restart: bool | None, timed_out: int | None) -> None:
        """Report why a worker went, unless it was stopped on purpose; first the results
        it finished but had not sent, which it left in its spool."""
        assignment = self.feed.assignment
        job_id = assignment.job.job_id if assignment else None
        spooled = read_spool(spool_path(worker.status_file))
        if job_id is not None and spooled:
            items = (ResultItem(index, kind, len(data)) for index, kind, data in spooled)
            payload = b"".join(data for _, _, data in spooled)
            self.feed.heard(worker, Results.of(job_id, items, 0.0), payload)
        status = read_status(worker.status_file)
        if restart is None and (worker.inflight or status is not None):
            if timed_out is not None:
                self.reporter.event(report_wire.TimeoutReport(job_id, worker.name, timed_out))
            else:
                running = status.index if status else None
                out_of_memory = await self.pool.out_of_memory(worker)
                limit = worker.memory_limit
                memory_gb = None if limit is None else limit / GIB
                node_gb = self.node_type.ram_gb
                death = report_wire.DeathReport(
                    job_id, worker.name, running, out_of_memory, memory_gb, node_gb
                )
                self.reporter.event(death)
            await self.reporter.report_news()
        if job_id is not None:  # what it held ended here: main_service puts it back
            for claim in worker.inflight.values():
                self.reporter.runs.let_go(claim.receipt)

    async def _replaced(self, old: Worker, new: Worker) -> None:
        await self.feed.replaced(old, new)
