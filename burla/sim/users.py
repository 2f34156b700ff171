"""Simulated users: each planned job is one remote_parallel_map call, made over
main_service's real HTTP app (long-polling `GET /jobs/{id}/events`) as the client makes
it, asking again while main_service is down or an answer is lost."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from burla.core import wire
from burla.core.limits import MAX_UPLOADS
from burla.sim.clock import VirtualClock
from burla.sim.main_host import DROPPED, MainHost
from burla.sim.profiles import SAME_REGION
from burla.sim.recorder import JobLog, Recorder
from burla.sim.scenario import JobArrival, Scenario
from burla.sim.storage import SimStorage
from burla.sim.workers import JobCosts, WorkerWorld

FUNCTION = b"simulated function: workers never unpickle it"
LONG_POLL_S = 30.0
RETRY_PAUSE_S = 1.0


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    user: str
    at_s: float
    arrival: JobArrival


def plan_jobs(scenario: Scenario) -> list[PlannedJob]:
    """Every job copy with its arrival time and id, in arrival order."""
    rng = random.Random(f"{scenario.seed}:arrivals")
    copies: list[tuple[float, int, int, JobArrival]] = []
    for n, arrival in enumerate(scenario.jobs):
        for user in range(arrival.users):
            delay = rng.uniform(0, arrival.spread_s) if arrival.spread_s else 0.0
            copies.append((arrival.at_s + delay, n, user, arrival))
    copies.sort(key=lambda c: c[:3])
    return [
        PlannedJob(f"sim-job-{k:05d}", f"user-{n}-{user}", at, arrival)
        for k, (at, n, user, arrival) in enumerate(copies)
    ]


class DelayedTransport(httpx.AsyncBaseTransport):
    """`inner`, with each request and each answer `delay()` virtual seconds on its way."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay: Callable[[], float]) -> None:
        self._inner = inner
        self._delay = delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await anyio.sleep(self._delay())
        response = await self._inner.handle_async_request(request)
        await anyio.sleep(self._delay())
        return response


class SimUsers:
    """The users of the planned jobs; `all_done` is set once every job has ended."""

    def __init__(
        self,
        scenario: Scenario,
        host: MainHost,
        storage: SimStorage,
        world: WorkerWorld,
        recorder: Recorder,
        clock: VirtualClock,
        rng: random.Random,
        token: str,
    ) -> None:
        self.scenario, self.host, self.storage, self.world = scenario, host, storage, world
        self.recorder, self.clock, self._rng = recorder, clock, rng
        self.planned = plan_jobs(scenario)
        self.answers_lost = 0
        self.all_done = anyio.Event()
        self._open_jobs = len(self.planned)
        self._building: dict[str, anyio.Event] = {}
        self._network = random.Random(f"{scenario.seed}:network")
        transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=host.serve_http)
        delay = scenario.client_delay_s
        if delay is None and scenario.network == "same-region":
            delay = SAME_REGION.client
        if delay is not None:
            rng = random.Random(f"{scenario.seed}:client-network")
            transport = DelayedTransport(transport, functools.partial(delay.draw, rng))
        self.http = httpx.AsyncClient(
            transport=transport,
            base_url="http://main",
            headers={"authorization": f"Bearer {token}"},
        )
        """Closed when the simulation is over (`async with users.http`)."""

    async def user(self, job: PlannedJob) -> None:
        """One remote_parallel_map call, from submission to its last result."""
        arrival = job.arrival
        log = JobLog(job.job_id, job.user, arrival.n_inputs, arrived=self.clock.elapsed())
        self.recorder.jobs[job.job_id] = log
        rng = random.Random(f"{self.scenario.seed}:{job.job_id}")
        self.world.costs[job.job_id] = JobCosts(
            run_s=[arrival.run_s.draw(rng) for _ in range(arrival.n_inputs)],
            result_bytes=arrival.result_bytes,
            function_loads=arrival.function_loads,
            memory_gb=arrival.memory_gb,
        )
        try:
            if arrival.image is not None and arrival.image not in self.host.kept_images:
                await self._build(arrival.image)
            await self._submit_and_follow(job, log)
        finally:
            self._open_jobs -= 1
            if not self._open_jobs:
                self.all_done.set()

    async def _build(self, image: str) -> None:
        """A never-seen image: built once with burla's worker inside, then kept warm."""
        building = self._building.get(image)
        if building is not None:
            await building.wait()
            return
        building = self._building[image] = anyio.Event()
        await anyio.sleep(self.scenario.image(image).build_s.draw(self._rng))
        await self.host.keep_image(image)
        building.set()

    async def _submit_and_follow(self, job: PlannedJob, log: JobLog) -> None:
        arrival = job.arrival
        spec = {
            "n_inputs": arrival.n_inputs,
            "func_cpu": arrival.func_cpu,
            "func_ram": arrival.func_ram,
            "image": arrival.image,
            "max_parallelism": arrival.max_parallelism,
            "retries": arrival.retries,
            "grow_memory": arrival.grow_memory,
        }
        if arrival.max_cost is not None:
            spec |= {"max_cost": arrival.max_cost, "seconds_per_input": arrival.seconds_per_input}
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
                await self.storage.blobs.put(key, b"input")  # straight there, by signed URL
                frames.append(({"i": len(frames), "blob": key}, b""))
        return frames

    async def _asked(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, bool]:
        """The answer, asking again now and then while main_service is down or the
        answer is lost, as the client does; and whether a try went unanswered after
        main_service had it (so it may have been carried out already)."""
        unanswered = False
        while True:
            answer = await self.http.request(method, path, **kwargs)
            if answer.status_code == DROPPED:
                unanswered = True  # main_service had it when it died
            elif answer.status_code != 503:
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
                case wire.BudgetStop():
                    log.over_budget = True
                case wire.JobDone(state, error):
                    log.done, log.state, log.error = now, state, error
        return head.next
