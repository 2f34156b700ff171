"""Simulated users: each planned job is one remote_parallel_map call, made over
main_service's real HTTP app (long-polling `GET /jobs/{id}/events`) as the client makes
it, asking again while main_service is down or an answer is lost.

A call may stop before its job ends, as the client does: without return_exceptions it
cancels the job as failed at the first failed input (`POST /jobs/{id}/cancel?failed=true`)
and raises; a process that dies just stops asking, and main_service runs the job on. A
user may then resume the job (`resume=`): a new call with the same inputs whose spec
names the job it resumes, which main_service checks and plans (main_service.resumes) as
it does the real client's."""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from burla.core import stream_wire, wire
from burla.core.limits import MAX_UPLOADS
from burla.core.models import JobState
from burla.core.resume import input_digest
from burla.sim.clock import VirtualClock
from burla.sim.main_host import DROPPED, MainHost
from burla.sim.profiles import SAME_REGION
from burla.sim.recorder import JobLog, Recorder
from burla.sim.scenario import JobArrival, ResumeCall, Scenario
from burla.sim.storage import SimStorage
from burla.sim.workers import JobCosts, WorkerWorld

FUNCTION = b"simulated function: workers never unpickle it"
INPUT = b"input"
"""Every input's pickled bytes: workers never unpickle them either."""
INPUT_DIGEST = input_digest(INPUT).hex()
LONG_POLL_S = 30.0
RETRY_PAUSE_S = 1.0


@dataclass(frozen=True)
class PlannedJob:
    job_id: str
    user: str
    at_s: float
    arrival: JobArrival
    resumes: str | None = None
    """The job this call resumes: set for a resumed call, made once the first ended."""


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
        self.resumed: dict[str, PlannedJob] = {}
        """The call that resumed each job, by the job it resumed."""
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

    def every_job(self) -> list[PlannedJob]:
        """Every call made: each planned one, followed by the call that resumed it."""
        calls: list[PlannedJob] = []
        for job in self.planned:
            calls.append(job)
            if job.job_id in self.resumed:
                calls.append(self.resumed[job.job_id])
        return calls

    async def user(self, job: PlannedJob) -> None:
        """One remote_parallel_map call, from submission to its last result (or until
        it stops), then the call that resumes its job if the scenario says so."""
        arrival = job.arrival
        log = JobLog(job.job_id, job.user, arrival.n_inputs, arrived=self.clock.elapsed())
        self.recorder.jobs[job.job_id] = log
        rng = random.Random(f"{self.scenario.seed}:{job.job_id}")
        costs = self.world.costs[job.job_id] = JobCosts(
            run_s=[arrival.run_s.draw(rng) for _ in range(arrival.n_inputs)],
            result_bytes=arrival.result_bytes,
            function_loads=arrival.function_loads,
            memory_gb=arrival.memory_gb,
            raises=arrival.raises.drawn(arrival.n_inputs, rng),
        )
        try:
            if arrival.image is not None and arrival.image not in self.host.kept_images:
                await self._build(arrival.image)
            dies_at = None
            if arrival.client_dies_s is not None:
                dies_at = log.arrived + arrival.client_dies_s
            await self._submit_and_follow(job, log, arrival.return_exceptions, dies_at)
            if arrival.resume is not None:
                await self._resume(job, arrival.resume, costs)
        finally:
            self._open_jobs -= 1
            if not self._open_jobs:
                self.all_done.set()

    async def _resume(self, job: PlannedJob, call: ResumeCall, costs: JobCosts) -> None:
        """Come back after `call.after_s`, cancel the first job or wait for its end if it
        still runs, and call again with the same inputs and `resume=` its id."""
        await anyio.sleep(call.after_s)
        answer, _ = await self._asked("GET", f"/jobs/{job.job_id}")
        if answer.status_code == 200 and not JobState(answer.json()["state"]).finished:
            if call.running == "cancel":
                await self._asked("POST", f"/jobs/{job.job_id}/cancel")
            else:
                await self._until_ended(job.job_id)
        again = PlannedJob(
            f"{job.job_id}-resume",
            job.user,
            self.clock.elapsed() - self.recorder.t0,
            job.arrival,
            resumes=job.job_id,
        )
        self.resumed[job.job_id] = again
        log = JobLog(again.job_id, again.user, job.arrival.n_inputs, arrived=self.clock.elapsed())
        log.resumes, log.failed_only = job.job_id, call.failed_only
        self.recorder.jobs[again.job_id] = log
        raises = frozenset[int]() if call.fixed else costs.raises
        self.world.costs[again.job_id] = dataclasses.replace(costs, raises=raises)
        keep_going = job.arrival.return_exceptions
        if call.return_exceptions is not None:
            keep_going = call.return_exceptions
        await self._submit_and_follow(again, log, keep_going, None)

    async def _until_ended(self, job_id: str) -> None:
        """Follow a job's events until its end, as `burla jobs result` does."""
        cursor, run = 0, None
        while True:
            params = {"after": cursor, "wait": LONG_POLL_S}
            answer, _ = await self._asked("GET", f"/jobs/{job_id}/events", params=params)
            if answer.status_code != 200:
                return
            head, events = stream_wire.read_stream(answer.content)
            if any(isinstance(event, stream_wire.JobDone) for event, _ in events):
                return
            # A main_service that took the job over has a stream of its own, from 0.
            cursor = head.next if run in (None, head.run) else 0
            run = head.run

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

    async def _submit_and_follow(
        self, job: PlannedJob, log: JobLog, return_exceptions: bool, dies_at: float | None
    ) -> None:
        """Submit the job and read its events until it ends, or until the client stops:
        at a failed input without `return_exceptions`, or when its process dies at
        `dies_at` (virtual seconds)."""
        arrival = job.arrival
        spec: dict[str, Any] = {
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
        if job.resumes is not None:
            assert arrival.resume is not None
            spec |= {"resumes": job.resumes, "resume_failed_only": arrival.resume.failed_only}
        frames: list[tuple[Any, bytes]] = [({"job_id": job.job_id, "spec": spec}, FUNCTION)]
        if arrival.blob_inputs:
            frames += await self._uploaded(job.job_id, arrival.n_inputs)
        else:
            frames += [({"i": n}, INPUT) for n in range(arrival.n_inputs)]
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
            if log.failed and not return_exceptions:
                # The client raises the input's error, canceling the job as failed first.
                params = {"failed": "true"}
                await self._asked("POST", f"/jobs/{job.job_id}/cancel", params=params)
                log.stopped = f"input {log.failed[0]} failed: canceled the job"
                log.done = self.clock.elapsed()
                return
            if cursor > seen and self.scenario.client_pause_s:
                await anyio.sleep(self.scenario.client_pause_s)
            wait = LONG_POLL_S
            if dies_at is not None:
                wait = min(wait, dies_at - self.clock.elapsed())
                if wait <= 0:  # the process is gone: nothing cancels the job
                    log.stopped = "the client died"
                    log.done = self.clock.elapsed()
                    return
            response, _ = await self._asked(
                "GET",
                f"/jobs/{job.job_id}/events",
                params={"after": cursor, "wait": wait},
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
                await self.storage.blobs.put(key, INPUT)  # straight there, by signed URL
                # With the digest of its bytes, which a job that resumes it is checked by.
                frames.append(({"i": len(frames), "blob": key, "digest": INPUT_DIGEST}, b""))
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
        head, events = stream_wire.read_stream(body)
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
                case stream_wire.JobResult(index, kind) if index not in log.had:
                    log.results[index] += 1
                    if kind != "ok":
                        log.failed.append(index)
                    if log.first_result is None:
                        log.first_result = now
                case stream_wire.BudgetStop():
                    log.over_budget = True
                case stream_wire.JobDone(state, error):
                    log.done, log.state, log.error = now, state, error
        return head.next
