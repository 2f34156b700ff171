"""One simulated cluster: the real main_service and node_services on memory backends,
simulated machines and containers, and simulated users, all in one trio run.

Users submit jobs and follow their results through main_service's real HTTP app (httpx's
ASGI transport, long-polling `GET /jobs/{id}/events`). main_service reaches each node over
an in-memory connection served by the node's real MainLink; each node reaches its
workers over in-memory streams (see burla.sim.workers). Nothing sleeps for real: every
wait is a deadline on trio's mock clock.
"""

from __future__ import annotations

import functools
import itertools
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from anyio.abc import TaskGroup, TaskStatus

from burla.backends.faults import FaultPlan, FaultyBlobStore, FaultyStore
from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core import wire
from burla.core.limits import MAX_UPLOADS
from burla.core.models import ClusterConfig, NodeState, StandbyDefinition
from burla.core.protocols import BlobStore, Store
from burla.services.main_service.app import create_app
from burla.services.main_service.service import MainService
from burla.services.node_service.link import MainLink
from burla.services.node_service.node import NodeService
from burla.services.retrying import RetryingBlobStore, RetryingStore
from burla.services.store_keys import STANDBY_KEY, results_prefix
from burla.sim.clock import Timers, VirtualClock
from burla.sim.compute import ADDRESS_SCHEME, SimComputeProvider, SimMachine
from burla.sim.pipes import PipeEnd, pipe
from burla.sim.recorder import JobLog, Recorder, Sample
from burla.sim.scenario import Fault, JobArrival, Scenario
from burla.sim.workers import JobCosts, SimContainerRuntime, WorkerWorld

FUNCTION = b"simulated function: workers never unpickle it"
LONG_POLL_S = 30.0
RETRY_PAUSE_S = 1.0
SETTLE_CHECK_S = 1.0


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


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    user: str
    at_s: float
    arrival: JobArrival


class Simulation:
    def __init__(self, scenario: Scenario, status_root: Path, *, validate: bool = False) -> None:
        self.scenario = scenario
        self.rng = random.Random(f"{scenario.seed}:cloud")
        self.clock = VirtualClock()
        self.timers = Timers()
        self.recorder = Recorder()
        self.world = WorkerWorld(
            clock=self.clock,
            timers=self.timers,
            recorder=self.recorder,
            images={i.image: i for i in scenario.images},
            rng=random.Random(f"{scenario.seed}:containers"),
            status_root=status_root,
        )
        self.token = secrets.token_hex(16)
        self.store = MemoryStore(self.clock)
        self.blobs = MemoryBlobStore(self.clock)
        self.faulty_store: FaultyStore | None = None
        self.services_store = self._services_store(scenario)
        """The Store as the services see it: failing now and then if the scenario says so."""
        self.faulty_blobs: FaultyBlobStore | None = None
        self.services_blobs = self._services_blobs(scenario)
        self.compute = SimComputeProvider(
            node_types={t.name: t for t in scenario.node_types},
            clock=self.clock,
            timers=self.timers,
            recorder=self.recorder,
            rng=self.rng,
            on_up=self._machine_up,
            on_down=self._machine_down,
            quota_cpus=scenario.quota_cpus,
        )
        self.kept_images = scenario.kept_images
        self.validate = validate
        self.main = self._new_main(scenario.cluster_config())
        self._app = create_app(self.main, self.token)
        self._main_scope: anyio.CancelScope | None = None
        self._main_down = False
        self._main_back = anyio.Event()
        """Set when a main_service that was down is serving again."""
        self._network = random.Random(f"{scenario.seed}:network")
        self._link_delay: Callable[[], float] | None = None
        if scenario.link_delay_s is not None:
            links = random.Random(f"{scenario.seed}:links")
            self._link_delay = functools.partial(scenario.link_delay_s.draw, links)
        self.answers_lost = 0
        self._restarting = anyio.Lock()
        """One main_service at a time: a restart waits for the one before to finish."""
        self.nodes: dict[str, SimNode] = {}
        self.planned = self._plan_jobs()
        self.faults: list[dict[str, Any]] = []
        self.standby_restored = False
        self.settled_at: float | None = None
        self.end = 0.0
        self.stored: dict[str, int] = {}
        """Results each job has in the Store at the end."""
        self._building: dict[str, anyio.Event] = {}
        self._open_jobs = len(self.planned)
        self._jobs_done = anyio.Event()
        self._tasks: TaskGroup | None = None
        self._http: httpx.AsyncClient | None = None

    def _new_main(self, config: ClusterConfig) -> MainService:
        return MainService(
            config=config,
            store=self.services_store,
            blobs=self.services_blobs,
            compute=self.compute,
            clock=self.clock,
            main_url=f"{ADDRESS_SCHEME}main",
            boot_env={},
            token=self.token,
            validate=self.validate,
            dial=self._dial,
        )

    def _plan_jobs(self) -> list[PlannedJob]:
        """Every job copy with its arrival time and id, in arrival order."""
        rng = random.Random(f"{self.scenario.seed}:arrivals")
        copies: list[tuple[float, int, int, JobArrival]] = []
        for n, arrival in enumerate(self.scenario.jobs):
            for user in range(arrival.users):
                delay = rng.uniform(0, arrival.spread_s) if arrival.spread_s else 0.0
                copies.append((arrival.at_s + delay, n, user, arrival))
        copies.sort(key=lambda c: c[:3])
        return [
            PlannedJob(f"sim-job-{k:05d}", f"user-{n}-{user}", at, arrival)
            for k, (at, n, user, arrival) in enumerate(copies)
        ]

    # The run ------------------------------------------------------------------------------
    async def run(self, finished: Callable[[], None]) -> None:
        """Run the scenario; call `finished` once everything is recorded, then stop."""
        transport = httpx.ASGITransport(app=self._serve_http)
        headers = {"authorization": f"Bearer {self.token}"}
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://main", headers=headers) as http,
            anyio.create_task_group() as tasks,
        ):
            self._http, self._tasks = http, tasks
            tasks.start_soon(self.timers.run)
            await tasks.start(self._run_main)
            if self.scenario.start_in_standby and self.scenario.standby:
                await self._until(self._in_standby, self.main.cluster.config.boot_timeout_s * 2)
            t0 = self.clock.elapsed()
            self.recorder.start_window(t0)
            for job in self.planned:
                self.timers.at(t0 + job.at_s, functools.partial(tasks.start_soon, self._user, job))
            for fault in self.scenario.faults:
                self.timers.at(t0 + fault.at_s, functools.partial(self._fault, fault))
            self._sample()
            if self.planned:
                await self._jobs_done.wait()
            self.standby_restored = await self._until(self._in_standby, self.scenario.settle_s)
            if self.standby_restored:
                self.settled_at = self.clock.elapsed()
            self.end = self.clock.elapsed()
            self._take_sample()
            for job in self.planned:
                self.stored[job.job_id] = await self._stored_results(job.job_id)
            finished()
            tasks.cancel_scope.cancel()

    async def _run_main(self, *, task_status: TaskStatus[None]) -> None:
        """main_service's life: until it is killed (a main_restart fault)."""
        with anyio.CancelScope() as scope:
            self._main_scope = scope
            async with anyio.create_task_group() as tasks:
                await self.main.run(tasks)
                task_status.started()
                await anyio.sleep_forever()

    async def _serve_http(self, scope: Any, receive: Any, send: Any) -> None:
        """main_service's HTTP app, or no answer but 503 while it is down."""
        if self._main_down:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"main_service is down"})
            return
        await self._app(scope, receive, send)

    async def _restart_main(self, down_s: float) -> None:
        """main_service dies; after `down_s` another starts, deletes the machines it finds
        (as a cloud cluster's main_service does) and takes the jobs over from the Store."""
        async with self._restarting:
            assert self._main_scope is not None
            assert self._tasks is not None
            self._main_down, self._main_back = True, anyio.Event()
            self._main_scope.cancel()
            await anyio.sleep(down_s)
            for machine in await self.compute.list():
                await self.compute.delete(machine.node_id)
            self.main = self._new_main(self.scenario.cluster_config(self.kept_images))
            self._app = create_app(self.main, self.token)
            await self._tasks.start(self._run_main)
            self._main_down = False
            self._main_back.set()

    async def _until(self, condition: Any, within_s: float) -> bool:
        """Wait until `condition()` holds (checked every second); False if it never did."""
        with anyio.move_on_after(within_s):
            while not condition():  # noqa: ASYNC110 - the cluster's state has no event
                await anyio.sleep(SETTLE_CHECK_S)
            return True
        return False

    def _in_standby(self) -> bool:
        """No node boots, every standby group is idle and whole, no machine is extra."""
        nodes = self.main.cluster.nodes.values()
        if any(n.state is NodeState.BOOTING for n in nodes):
            return False
        standby = self.main.cluster.config.standby
        for group in standby.nodes:
            if self.main.cluster.idle(group.node_type.name) != group.count:
                return False
        return self.recorder.alive == len(self.main.cluster.nodes)

    def _sample(self) -> None:
        self._take_sample()
        self.timers.after(self._sample_s(), self._sample)

    def _sample_s(self) -> float:
        return self.scenario.sample_s or 1.0

    def _take_sample(self) -> None:
        counts = {state: 0 for state in NodeState}
        for node in self.main.cluster.nodes.values():
            counts[node.state] += 1
        self.recorder.samples.append(
            Sample(
                t=self.clock.elapsed() - self.recorder.t0,
                booting=counts[NodeState.BOOTING],
                ready=counts[NodeState.READY],
                busy=counts[NodeState.BUSY],
                machines=self.recorder.alive,
                machine_cpus=self.recorder.alive_cpus,
                busy_cpus=self.recorder.busy_cpus,
            )
        )

    # Machines and nodes -------------------------------------------------------------------
    def _machine_up(self, machine: SimMachine) -> None:
        node_id = machine.boot.node_id
        runtime = SimContainerRuntime(self.world, node_id)
        node = SimNode(machine, runtime, MainLink(self.main.node_secret))
        self.nodes[node_id] = node
        assert self._tasks is not None
        self._tasks.start_soon(self._run_node, node)

    def _services_blobs(self, scenario: Scenario) -> BlobStore:
        if not scenario.blob_failures:
            return self.blobs
        plan = FaultPlan(blobs=scenario.blob_failures, seed=scenario.seed)
        faulty = FaultyBlobStore(self.blobs, plan, random.Random(f"{scenario.seed}:blobs"))
        self.faulty_blobs = faulty
        return RetryingBlobStore(faulty, rng=random.Random(f"{scenario.seed}:blob-retries"))

    def _services_store(self, scenario: Scenario) -> Store:
        if not scenario.store_failures:
            return self.store
        plan = FaultPlan(store=scenario.store_failures, seed=scenario.seed)
        faulty = FaultyStore(self.store, plan, random.Random(f"{scenario.seed}:store"))
        self.faulty_store = faulty
        return RetryingStore(faulty, rng=random.Random(f"{scenario.seed}:retries"))

    async def _run_node(self, node: SimNode) -> None:
        """The node's life, as python -m burla.services.node_service lives it on a VM."""
        if node.dead:
            return
        node_id = node.machine.boot.node_id
        doc = await self.store.get(STANDBY_KEY)
        standby = StandbyDefinition.model_validate(doc.data if doc else {})
        node.service = NodeService(
            node_id=node_id,
            node_type=node.machine.boot.node_type,
            containers=standby.containers,
            runtime=node.runtime,
            store=self.services_store,
            blobs=self.services_blobs,
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
            async with anyio.create_task_group() as tasks:
                node.tasks = tasks
                await node.service.run(tasks)
                self.recorder.machine_ready(self.clock.elapsed(), node_id)
                # The node's POST /nodes/{id}/booted: main_service handles it, not the node.
                assert self._tasks is not None
                self._tasks.start_soon(self._booted, node)

    async def _booted(self, node: SimNode) -> None:
        if not node.dead and not self._main_down:  # else its machine goes: nobody asks
            node_id = node.machine.boot.node_id
            await self.main.node_booted(node_id, f"{ADDRESS_SCHEME}{node_id}")

    def _machine_down(self, node_id: str) -> None:
        node = self.nodes.pop(node_id, None)
        if node is None:
            return
        node.dead = True
        if node.scope is not None:
            node.scope.cancel()
        node.runtime.kill_all()
        for end in node.links:
            end.close()

    async def _dial(self, address: str) -> PipeEnd:
        node = self.nodes.get(address.removeprefix(ADDRESS_SCHEME))
        if node is None or node.dead or node.tasks is None or node.service is None:
            raise ConnectionRefusedError(f"nothing listens at {address}")
        near, far = pipe(self._link_delay)
        node.links.append(far)
        node.tasks.start_soon(node.link.serve, node.service, far)
        return near

    # Faults -------------------------------------------------------------------------------
    def _fault(self, fault: Fault) -> None:
        now = self.clock.elapsed() - self.recorder.t0
        if fault.kind == "main_restart":
            assert self._tasks is not None
            self._tasks.start_soon(self._restart_main, fault.down_s)
            targets = ["main_service"]
        elif fault.kind == "node_death":
            if fault.node is not None:
                targets = [fault.node] if fault.node in self.nodes else []
            else:
                busy = sorted(
                    n.node_id
                    for n in self.main.cluster.nodes.values()
                    if n.state is NodeState.BUSY and n.node_id in self.nodes
                )
                targets = self.rng.sample(busy, min(fault.count, len(busy)))
            for node_id in targets:
                self.compute.fail(node_id)
        else:
            running = [
                (node_id, name)
                for node_id in sorted(self.nodes)
                for name in self.nodes[node_id].runtime.busy_workers()
            ]
            chosen = self.rng.sample(running, min(fault.count, len(running)))
            for node_id, name in chosen:
                self.nodes[node_id].runtime.crash(name)
            targets = [name for _, name in chosen]
        self.faults.append({"at_s": now, "kind": fault.kind, "targets": sorted(targets)})

    # Users --------------------------------------------------------------------------------
    async def _user(self, job: PlannedJob) -> None:
        """One remote_parallel_map call, from submission to its last result."""
        arrival = job.arrival
        log = JobLog(job.job_id, job.user, arrival.n_inputs, arrived=self.clock.elapsed())
        self.recorder.jobs[job.job_id] = log
        rng = random.Random(f"{self.scenario.seed}:{job.job_id}")
        self.world.costs[job.job_id] = JobCosts(
            run_s=[arrival.run_s.draw(rng) for _ in range(arrival.n_inputs)],
            result_bytes=arrival.result_bytes,
            function_loads=arrival.function_loads,
        )
        try:
            if arrival.image is not None and arrival.image not in self.kept_images:
                await self._build(arrival.image)
            await self._submit_and_follow(job, log)
        finally:
            self._open_jobs -= 1
            if not self._open_jobs:
                self._jobs_done.set()

    async def _build(self, image: str) -> None:
        """A never-seen image: built once with burla's worker inside, then added to the
        standby definition (main_service restarts the standby set with it)."""
        building = self._building.get(image)
        if building is not None:
            await building.wait()
            return
        building = self._building[image] = anyio.Event()
        await anyio.sleep(self.scenario.image(image).build_s.draw(self.rng))
        self.kept_images = (*self.kept_images, image)
        if self._main_down:
            await self._main_back.wait()  # it starts with kept_images
        else:
            await self.main.restart(self.scenario.cluster_config(self.kept_images))
        building.set()

    async def _submit_and_follow(self, job: PlannedJob, log: JobLog) -> None:
        assert self._http is not None
        arrival = job.arrival
        spec = {
            "n_inputs": arrival.n_inputs,
            "func_cpu": arrival.func_cpu,
            "func_ram": arrival.func_ram,
            "image": arrival.image,
            "max_parallelism": arrival.max_parallelism,
            "retries": arrival.retries,
        }
        frames: list[tuple[Any, bytes]] = [({"job_id": job.job_id, "spec": spec}, FUNCTION)]
        if arrival.blob_inputs:
            frames += await self._uploaded(job.job_id, arrival.n_inputs)
        else:
            frames += [({"i": n}, b"input") for n in range(arrival.n_inputs)]
        log.submitted = self.clock.elapsed()
        body = wire.encode_many(frames)
        response, unanswered = await self._asked("POST", "/jobs", content=body, params={"wait": 0})
        if response.status_code == 409 and unanswered:
            # An earlier try went through, only its answer was lost: follow the job.
            response, _ = await self._asked("GET", f"/jobs/{job.job_id}/events")
        cursor = 0
        while True:
            if response.status_code != 200:
                log.state, log.error = "refused", response.text
                log.done = self.clock.elapsed()
                return
            seen, cursor = cursor, self._read_events(log, response.content)
            if log.done is not None:
                return
            if cursor > seen and self.scenario.client_pause_s:
                await anyio.sleep(self.scenario.client_pause_s)
            response, _ = await self._asked(
                "GET",
                f"/jobs/{job.job_id}/events",
                params={"after": cursor, "wait": LONG_POLL_S},
            )

    async def _uploaded(self, job_id: str, count: int) -> list[tuple[Any, bytes]]:
        """Upload a job's inputs, as the client does with big ones; the job's frames."""
        frames: list[tuple[Any, bytes]] = []
        while len(frames) < count:
            asked = {
                "job_id": job_id,
                "first": len(frames),
                "count": min(count - len(frames), MAX_UPLOADS),
            }
            answer, _ = await self._asked("POST", "/uploads", json=asked)
            for key in answer.json()["keys"][: count - len(frames)]:
                await self.blobs.put(key, b"input")  # straight to storage, by signed URL
                frames.append(({"i": len(frames), "blob": key}, b""))
        return frames

    async def _asked(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, bool]:
        """The answer, asking again now and then while main_service is down or the
        answer is lost, as the client does; and whether a try went unanswered after
        main_service had it (so it may have been carried out already)."""
        assert self._http is not None
        unanswered = False
        while True:
            answer = await self._http.request(method, path, **kwargs)
            if answer.status_code != 503:
                if self._network.random() >= self.scenario.lost_answers:
                    return answer, unanswered
                self.answers_lost += 1
                unanswered = True
            await anyio.sleep(RETRY_PAUSE_S)

    def _read_events(self, log: JobLog, body: bytes) -> int:
        now = self.clock.elapsed()
        head, events = wire.read_stream(body)
        if head.run != log.run_id:
            log.streams += 1
            if log.run_id is not None:
                # A new main_service took the job over: read its stream from the start,
                # counting only what the old one had not sent.
                log.run_id, log.had = head.run, frozenset(log.results)
                return 0
            log.run_id = head.run
        for event, _ in events:
            match event:
                case wire.JobResult(index) if index not in log.had:
                    log.results[index] += 1
                    if log.first_result is None:
                        log.first_result = now
                case wire.JobDone(state, error):
                    log.done, log.state, log.error = now, state, error
        return head.next

    # Checks -------------------------------------------------------------------------------
    async def _stored_results(self, job_id: str) -> int:
        """How many results of the job the Store holds."""
        count, after = 0, ""
        while docs := await self.store.list(results_prefix(job_id), after=after, limit=1000):
            count += len(docs)
            after = docs[-1].key
        return count
