"""Feeding the node's job to its workers: the inputs handed out with its assignment first
(services.handed_inputs), then the rest claimed from the Store in batches; sending each
worker frames of about TARGET_BATCH_S of work, taking their results and lines, and
stopping workers whose input runs past the job's timeout. An input that needs more
memory than the job's func_ram (it ran out before: burla.core.memory) goes to a worker
that has it, grown for it while siblings are parked."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

import anyio
from anyio.abc import TaskGroup

from burla.core import report_wire, worker_wire
from burla.core.backoff import Backoff
from burla.core.clock import Clock
from burla.core.errors import BackendUnavailableError, NotFoundError
from burla.core.memory import GIB, Growth, WorkerMemory, gib, plan_growth
from burla.core.models import JobSpec
from burla.core.protocols import BlobStore, Claim, Store
from burla.core.timeouts import WorkerLook, look_every_s, overdue
from burla.core.trace import mark
from burla.core.worker_wire import EndJob, Fetched, FromWorker, Inputs, JobStart, Lines, Results
from burla.services.container_service.status import read_status
from burla.services.handed_inputs import queued_receipts
from burla.services.input_runs import KeptInputs, is_run, memory_of, run_of
from burla.services.node_service.channel import Sent
from burla.services.node_service.reports import Finished, Reporter
from burla.services.node_service.worker_pool import Worker, WorkerPool
from burla.services.retrying import PATIENT_PAUSE_S
from burla.services.store_keys import INLINE, queue_name

TARGET_BATCH_S = 0.005
"""Work sent to a worker in one frame, in seconds of its measured run time."""
MAX_BATCH = 256
PREFETCH_BELOW_S = 1.0
"""A worker whose inputs run shorter than this gets a second frame queued behind the one
it runs, so it never waits for the node. Longer inputs are not held back that way: one
queued behind a 4-minute input would wait 4 minutes while nodes that join later idle."""
CLAIM_IDLE_SHARE = 0.05
"""...unless waiting for the node's claim after each input would idle the worker longer
than this share of its time: on a slow Store (a Firestore claim that races other nodes
takes 0.1-0.4 s), inputs up to 20 claims long get a second frame queued behind."""
FIRST_CLAIM_S = 0.5
"""What a claim is taken to take before the node made one (a job's handed-out inputs
run first): a claim on Firestore that races other nodes takes 0.1-0.4 s, and up to a
second when a thousand nodes claim at once."""
BLOB_URL_S = 3600.0
IDLE_POLL_FIRST_S = 0.01
IDLE_POLL_MAX_S = 5.0
"""First and longest wait between two looks at the job's queue once it was found empty
(inputs come back to it only when a worker or node elsewhere is lost)."""


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
    drained: bool = False
    """main_service was told the node has nothing to do for the job (see _say_drained)."""
    claim_s: float = 0.0
    """How long the node's claims of the job take (a moving average)."""
    claiming: bool = False
    """A claim is out: the feed goes on handing out what the node holds meanwhile."""
    run_length: int = 1
    """The most inputs one item of the job's queue holds (services.input_runs)."""
    slowest_s: float = 0.0
    """The longest an input of the job took on this node so far (as its frame's mean)."""
    kept: KeptInputs | None = None
    """The job's input pages, as read for the runs the node claimed."""
    bigger: list[tuple[Claim, int]] = field(default_factory=list)
    """Claimed inputs that need a worker of more memory than func_ram, and how many bytes,
    oldest first."""
    growing: Growth | None = None
    """A worker to be grown for the first of them once the siblings it parks are idle."""
    parked: dict[str, str] = field(default_factory=dict)
    """Workers given no more inputs (their memory is a grown worker's), by name, and the
    worker each makes room for."""

    def __post_init__(self) -> None:
        self.changed = {w.name: w for w in self.workers}

    def held(self) -> list[str]:
        """Receipts of the inputs the node holds: claimed, and not yet reported done."""
        receipts = [c.receipt for c in self.pending] + [c.receipt for c, _ in self.bigger]
        return receipts + [c.receipt for w in self.workers for c in w.inflight.values()]


class Feed:
    """The node's one job at a time: `assignment`, None between jobs."""

    def __init__(
        self,
        *,
        store: Store,
        blobs: BlobStore,
        clock: Clock,
        lease_s: float,
        pool: WorkerPool,
        reporter: Reporter,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self.lease_s = lease_s
        self.pool = pool
        self.reporter = reporter
        self.assignment: Assignment | None = None

    async def start(self, assignment: Assignment, tasks: TaskGroup) -> None:
        """Give the assignment's workers the job's function, then feed them."""
        self.assignment = assignment
        self.reporter.hurry()  # a job's first results go at once
        for worker in assignment.workers:
            worker.batch, worker.per_input_s = 1, math.inf  # a new function, a new pace
            await self.send_job(worker)
        if assignment.pending:  # handed out with the assignment: behind the function, unclaimed
            self._look_again(assignment)
            await self._dispatch(assignment)
        tasks.start_soon(self._feed, assignment)
        if assignment.job.timeout_s is not None:
            tasks.start_soon(self._watch_timeouts, assignment)

    async def end(self, job_id: str, *, cancel: bool) -> None:
        """Stop work on the job. On cancel, workers still running its inputs are stopped,
        and every input the node held goes back to the queue at once (a job that goes on,
        taken over by a main_service that reset this node, runs them elsewhere without
        waiting for their leases to run out)."""
        assignment = self.assignment
        if assignment is None or assignment.job.job_id != job_id or assignment.ended:
            return
        assignment.ended = True
        assignment.wake.set()
        waiting = [c.receipt for c in assignment.pending] + [
            c.receipt for c, _ in assignment.bigger
        ]
        receipts = assignment.held() if cancel else waiting
        assignment.pending, assignment.bigger = [], []
        if receipts:
            await self._hand_back(job_id, receipts)
        self.reporter.runs.drop(receipts)
        end_job: list[Sent] = [(EndJob(job_id), b"")]
        stopped = [worker for worker in assignment.workers if cancel and worker.inflight]
        for worker in assignment.workers:
            if worker.channel is not None and worker not in stopped:
                await self._send(worker, end_job)  # one small frame: no task of its own
        if stopped:
            async with anyio.create_task_group() as group:
                for worker in stopped:
                    group.start_soon(self.pool.stop, worker, True)

    async def give_back(self, but: Sequence[str] = ()) -> None:
        """Put the inputs the node holds (`but` those) back in the queue at once: the node
        is going away, and the job goes on elsewhere without waiting for their leases."""
        assignment = self.assignment
        if assignment is None:
            return
        kept = set(but)
        if held := [receipt for receipt in assignment.held() if receipt not in kept]:
            await self._hand_back(assignment.job.job_id, held)

    async def _hand_back(self, job_id: str, receipts: list[str]) -> None:
        """Put claimed inputs back in the queue at once; with the Store down, their leases
        run out by themselves. A run goes back whole. Inputs handed out with the
        assignment are in no queue: main_service puts them back."""
        if not (queued := queued_receipts(receipts)):
            return
        try:
            await self.store.renew(queue_name(job_id), queued, lease_s=0)
        except BackendUnavailableError as error:
            _say(f"handing back {len(receipts)} inputs of job {job_id}", error)

    async def renew_leases(self) -> None:
        """Keep the claims on the inputs the node holds."""
        while True:
            await anyio.sleep(self.lease_s / 3)
            assignment = self.assignment
            if assignment is None or assignment.ended:
                continue
            job_id = assignment.job.job_id
            if held := queued_receipts(assignment.held() + self.reporter.unacked(job_id)):
                try:
                    await self.store.renew(queue_name(job_id), held, lease_s=self.lease_s)
                except BackendUnavailableError as error:  # the next round tries again
                    _say(f"renewing the leases of job {job_id}", error)

    # Sending -----------------------------------------------------------------------------
    async def _feed(self, assignment: Assignment) -> None:
        idle = Backoff(IDLE_POLL_FIRST_S, IDLE_POLL_MAX_S)
        if assignment.claimed >= assignment.job.n_inputs:  # all of them came with it
            assignment.look_again_at = self.clock.now() + idle.pause()
        async with anyio.create_task_group() as claims:
            await self._feed_until_ended(assignment, idle, claims)
        late = [c.receipt for c in assignment.pending] + [c.receipt for c, _ in assignment.bigger]
        if assignment.ended and late:  # claimed after end() gave back the rest
            assignment.pending, assignment.bigger = [], []
            await self._hand_back(assignment.job.job_id, late)

    async def _feed_until_ended(
        self, assignment: Assignment, idle: Backoff, claims: TaskGroup
    ) -> None:
        """Hand out what the node holds as workers have room, and claim more as it runs
        low: a claim runs alongside (it may take a second behind a busy queue's writes),
        and a job queued in runs is claimed ahead by about two frames per worker."""
        while not assignment.ended and not assignment.failed:
            self._look_again(assignment)
            room = sum(free for _, free in assignment.room.values())
            wanted = room + _ahead(assignment) - len(assignment.pending)
            if (
                wanted > 0
                and self.clock.now() >= assignment.look_again_at
                and not assignment.claiming
            ):
                assignment.claiming = True
                claims.start_soon(self._claim, assignment, wanted, idle)
            if assignment.bigger:
                await self._give_bigger(assignment)
                self._look_again(assignment)  # workers parked or grown meanwhile
            if assignment.pending:
                await self._dispatch(assignment)
                if assignment.pending and assignment.room:
                    continue  # more to hand out at once
            await self._say_drained(assignment)
            pause = assignment.look_again_at - self.clock.now()
            if pause > 0 and not assignment.pending:
                with anyio.move_on_after(pause):
                    await assignment.wake.wait()
            elif assignment.pending or assignment.claiming or wanted <= 0:
                await assignment.wake.wait()  # a result, a claim or a new worker
            else:
                # The time to look again came between the check above and now (the
                # Store's clock and the event loop's differ by microseconds): look now. A
                # wait here would have no end, for nothing is in flight to wake it.
                continue
            if assignment.wake.is_set():
                assignment.wake = anyio.Event()

    async def _claim(self, assignment: Assignment, wanted: int, idle: Backoff) -> None:
        try:
            await self._claim_now(assignment, wanted, idle)
        finally:
            assignment.claiming = False
            assignment.wake.set()

    async def _claim_now(self, assignment: Assignment, wanted: int, idle: Backoff) -> None:
        job = assignment.job
        mark("node claims inputs")
        started = self.clock.now()
        asked = math.ceil(wanted / assignment.run_length)
        try:
            queue = queue_name(job.job_id)
            items = await self.store.claim(queue, limit=asked, lease_s=self.lease_s)
            claims, bigger = await self._inputs_of(assignment, items)
        except BackendUnavailableError as error:
            _say(f"claiming inputs of job {job.job_id}", error)
            assignment.look_again_at = self.clock.now() + PATIENT_PAUSE_S
            return
        except NotFoundError as error:  # its inputs are gone from the Store
            self.job_error(job.job_id, f"node_service could not read the job's inputs: {error}")
            return
        mark("node claimed inputs")
        took = self.clock.now() - started
        assignment.claim_s = (assignment.claim_s + took) / 2
        assignment.pending += claims
        assignment.bigger += bigger
        if claims or bigger:
            assignment.drained = False
        assignment.claimed += len(claims) + len(bigger)
        if len(items) < asked or assignment.claimed >= job.n_inputs:
            # The queue is empty for now (or must be: this node has had every input).
            # Inputs come back to it only from a worker or node that was lost, so it is
            # looked at again after a pause that grows, not at every result (most results
            # of a job come after this).
            assignment.look_again_at = self.clock.now() + idle.pause()
        else:
            idle.reset()
            assignment.look_again_at = 0.0

    async def _inputs_of(
        self, assignment: Assignment, claims: list[Claim]
    ) -> tuple[list[Claim], list[tuple[Claim, int]]]:
        """The inputs the claimed items hold: a run's read from the job's input pages, each
        under the run's receipt; apart, those that need more memory, and how many bytes.
        A run whose page cannot be read now goes back."""
        if all(run_of(claim.data) is None for claim in claims):
            return claims, []
        job_id = assignment.job.job_id
        if assignment.kept is None:
            assignment.kept = KeptInputs(self.store, job_id)
        inputs: list[Claim] = []
        bigger: list[tuple[Claim, int]] = []
        runs: list[tuple[str, int, int]] = []
        try:
            for claim in claims:
                if (run := run_of(claim.data)) is None:
                    inputs.append(claim)
                    continue
                need = memory_of(claim.data)
                # Made by hand, not by dataclasses.replace: a third of the cost, per input.
                receipt, deliveries, expires = claim.receipt, claim.deliveries, claim.lease_expires
                for item_id, data in await assignment.kept.run(*run):
                    one = Claim(item_id, data, receipt, deliveries, expires)
                    if need is None:
                        inputs.append(one)
                    else:
                        bigger.append((one, gib(need)))
                if is_run(claim.item_id):
                    runs.append((claim.receipt, *run))
        except BackendUnavailableError:
            await self._hand_back(job_id, [claim.receipt for claim in claims])
            raise
        if runs:
            for receipt, _, count in runs:
                self.reporter.runs.add(receipt, count)
            receipts, firsts, counts = zip(*runs, strict=True)
            self.reporter.event(
                report_wire.RunsReport(job_id, receipts, firsts, counts), urgent=False
            )
        return inputs, bigger

    async def _say_drained(self, assignment: Assignment) -> None:
        """Tell main_service once the queue was found empty and no input is left here,
        so that it may let the node go before the job's other nodes finish; again after
        the node finds inputs that came back."""
        idle = not assignment.pending and not assignment.bigger
        idle = idle and not assignment.claiming and not any(w.inflight for w in assignment.workers)
        if idle and assignment.look_again_at > self.clock.now() and not assignment.drained:
            assignment.drained = True
            self.reporter.event(report_wire.DrainedReport(assignment.job.job_id))
            await self.reporter.report_news()

    def _look_again(self, assignment: Assignment) -> None:
        """Bring `assignment.room` up to date for the workers that changed."""
        for name, worker in assignment.changed.items():
            free = _room(worker, assignment) if worker.channel is not None else 0
            if free:
                assignment.room[name] = (worker, free)
            else:
                assignment.room.pop(name, None)
        assignment.changed.clear()

    async def _dispatch(self, assignment: Assignment) -> None:
        for worker, free in list(assignment.room.values()):
            if not assignment.pending:
                break
            if worker.channel is None:  # gone; its replacement will be looked at
                assignment.room.pop(worker.name, None)
                continue
            take = min(free, worker.batch, len(assignment.pending))
            assignment.changed[worker.name] = worker
            claims, assignment.pending = assignment.pending[:take], assignment.pending[take:]
            await self._send_inputs(assignment, worker, claims)

    async def _give_bigger(self, assignment: Assignment) -> None:
        """Hand the inputs that need more memory to workers that have it, oldest first.
        When none has, grow one (core.memory.plan_growth): the siblings it parks get no
        more inputs, and once they have none in flight its limit is raised. A worker
        grown, and those parked for it, stay so until the job ends here."""
        node_bytes = gib(self.pool.node_type.ram_gb)
        base = gib(assignment.job.func_ram)
        while assignment.bigger:
            claim, need = assignment.bigger[0]
            need = min(need, node_bytes)
            by_name = {w.name: w for w in assignment.workers}
            growth = assignment.growing
            if growth is None:
                active = [
                    w
                    for w in assignment.workers
                    if w.channel is not None and w.name not in assignment.parked
                ]
                if big := [w for w in active if (w.memory_limit or base) >= need]:
                    ready = next((w for w in big if _room(w, assignment)), None)
                    if ready is None:
                        return  # a result of one of them makes room
                    assignment.bigger.pop(0)
                    assignment.changed[ready.name] = ready
                    await self._send_inputs(assignment, ready, [claim])
                    continue
                if not active:
                    return  # workers being replaced: a replacement wakes the feed
                shape = [
                    WorkerMemory(w.name, w.memory_limit or base, len(w.inflight)) for w in active
                ]
                growth = assignment.growing = plan_growth(node_bytes, shape, need)
                for name in growth.park:
                    assignment.changed[name] = by_name[name]
            worker = by_name[growth.worker]
            if worker.channel is None or any(by_name[n].inflight for n in growth.park):
                return  # a result, or the replacement, wakes the feed
            await self.pool.limit_memory(worker, assignment.job, growth.limit)
            if worker.memory_limit != growth.limit:
                return  # gone meanwhile: its replacement is grown instead
            assignment.parked.update(dict.fromkeys(growth.park, growth.worker))
            assignment.growing = None
            assignment.changed[worker.name] = worker

    async def _send_inputs(
        self, assignment: Assignment, worker: Worker, claims: list[Claim]
    ) -> None:
        """Send claimed inputs to a worker, and say so to main_service."""
        job_id = assignment.job.job_id
        indices = tuple([int(claim.item_id) for claim in claims])
        worker.inflight.update(zip(indices, claims, strict=True))
        queued = [claim.data for claim in claims]
        fetched: list[Fetched] = []
        if {data[0] for data in queued} != {INLINE[0]}:
            for index, data in zip(indices, queued, strict=True):
                if data[:1] != INLINE:  # a big input: the worker fetches it from the blob store
                    key = data[1:].decode()
                    url = await self.blobs.signed_url(key, method="GET", expires_s=BLOB_URL_S)
                    fetched.append(Fetched(index, url))
            queued = [data if data[:1] == INLINE else INLINE for data in queued]
        sizes = tuple([len(data) - 1 for data in queued])
        payload = b"".join([data[1:] for data in queued])
        receipts = tuple([claim.receipt for claim in claims])
        limit = worker.memory_limit
        grown = limit / GIB if limit and limit > gib(assignment.job.func_ram) else None
        claimed = report_wire.ClaimReport(job_id, worker.name, indices, receipts, grown)
        self.reporter.event(claimed, urgent=False)  # rides with results, or goes soon
        mark("node sends inputs to a worker")
        await self._send(worker, [(Inputs(job_id, indices, sizes, tuple(fetched)), payload)])

    async def send_job(self, worker: Worker) -> None:
        assignment = self.assignment
        if assignment is None or assignment.ended or worker not in assignment.workers:
            return
        job = JobStart(assignment.job.job_id, assignment.packages_path, assignment.token)
        mark("node starts the job on a worker")
        await self._send(worker, [(job, assignment.function)])

    async def _send(self, worker: Worker, frames: list[Sent]) -> None:
        channel = worker.channel
        if channel is None:
            return
        # A worker that is gone is noticed and reported by its reader.
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await channel.send(frames)

    # Hearing -----------------------------------------------------------------------------
    def heard(self, worker: Worker, message: FromWorker, payload: bytes) -> None:
        """Take in what a worker sent."""
        match message:
            case Results():
                self._take_results(worker, message, payload)
            case Lines(job_id=str(job_id)):  # lines printed between jobs go nowhere
                for line in message.items:
                    report = report_wire.LineReport(job_id, line.index, line.stream, line.text)
                    self.reporter.event(report)
            case worker_wire.JobErrorReport():
                self.job_error(message.job_id, message.message)

    def _take_results(self, worker: Worker, results: Results, payload: bytes) -> None:
        mark("node has results")
        job_id, indices, kinds, sizes = (
            results.job_id,
            results.indices,
            results.kinds,
            results.sizes,
        )
        # Column by column, one pass each: a node takes thousands of results a second.
        pop = worker.inflight.pop
        claims = [pop(index, None) for index in indices]
        ends = list(accumulate(sizes))
        pieces = [payload[a:b] for a, b in zip([0, *ends], ends, strict=False)]
        if any(claim is None for claim in claims):  # the job ended or was given up on meanwhile
            kept = [n for n, claim in enumerate(claims) if claim is not None]
            indices, kinds = tuple(indices[n] for n in kept), tuple(kinds[n] for n in kept)
            sizes = tuple(sizes[n] for n in kept)
            pieces, claims = [pieces[n] for n in kept], [claims[n] for n in kept]
            payload = b"".join(pieces)
        receipts = [claim.receipt for claim in claims if claim is not None]
        if set(kinds) <= {"ok"}:
            self.reporter.finished(Finished(job_id, list(indices), pieces, receipts))
        else:
            done = Finished(job_id, [], [], [])
            for index, kind, data, claim in zip(indices, kinds, pieces, claims, strict=True):
                assert claim is not None
                if kind == "ok":
                    done.indices.append(index)
                    done.results.append(data)
                    done.receipts.append(claim.receipt)
                else:
                    self.reporter.runs.let_go(claim.receipt)
            self.reporter.finished(done)
        if indices:
            report = report_wire.ResultsReport(job_id, worker.name, indices, kinds, sizes)
            self.reporter.event(report, payload)
        # Size the next frames so that each holds about TARGET_BATCH_S of work.
        if results.indices:
            per_input = max(results.busy_s, 1e-7) / len(results.indices)
            worker.per_input_s = per_input
            worker.batch = max(1, min(MAX_BATCH, math.ceil(TARGET_BATCH_S / per_input)))
        assignment = self.assignment
        if assignment is not None:
            if assignment.job.job_id == job_id:
                assignment.changed[worker.name] = worker
                if not assignment.pending and not any(w.inflight for w in assignment.workers):
                    self.reporter.hurry()
                if results.indices and results.busy_s:
                    assignment.slowest_s = max(assignment.slowest_s, worker.per_input_s)
                if assignment.bigger and not worker.inflight:
                    assignment.wake.set()  # one it waits for may be free now
            # The feed has nothing to do before the worker has room for a whole frame,
            # and while the queue was found empty it looks again in a while.
            wanted = assignment.pending or self.clock.now() >= assignment.look_again_at
            if wanted and _room(worker, assignment):
                assignment.wake.set()

    def job_error(self, job_id: str, message: str) -> None:
        """The job cannot run here: report it once."""
        assignment = self.assignment
        if assignment is None or assignment.job.job_id != job_id or assignment.failed:
            return
        assignment.failed = True
        self.reporter.event(worker_wire.JobErrorReport(job_id, message))

    async def replaced(self, old: Worker, new: Worker) -> None:
        """A worker of the job that went runs again: give the new one the job it had."""
        assignment = self.assignment
        if assignment is not None and old in assignment.workers:
            assignment.workers[assignment.workers.index(old)] = new
            assignment.changed[new.name] = new
            # One grown for an input that needs more starts at func_ram again: the
            # siblings parked for it take inputs again.
            for name in [n for n, grown in assignment.parked.items() if grown == old.name]:
                del assignment.parked[name]
                assignment.changed[name] = next(w for w in assignment.workers if w.name == name)
            await self.pool.limit_memory(new, assignment.job)
            await self.send_job(new)
            assignment.wake.set()

    async def _watch_timeouts(self, assignment: Assignment) -> None:
        """Stop the workers whose input ran past the job's timeout (core.timeouts)."""
        limit = assignment.job.timeout_s
        assert limit is not None
        while not assignment.ended:
            await anyio.sleep(look_every_s(limit))
            # A worker gone, or being stopped for its last look, has nothing to stop: a
            # second stop could land on its replacement, which runs under its name.
            looks = [
                _look(worker)
                for worker in assignment.workers
                if worker.channel is not None and not self.pool.stopping_overdue(worker)
            ]
            for stop in overdue(looks, self.clock.now(), limit):
                await self.pool.stop_overdue(stop.worker, stop.index)


def _ahead(assignment: Assignment) -> int:
    """Inputs a node claims beyond its workers' room, of a job queued in runs: a frame for
    each worker that gets a second frame queued behind the one it runs (see _room), or
    two while a claim takes half an input's time or more (a claim behind a busy
    queue's writes may take a second). No more: what a node holds ahead as the queue
    runs out is what other nodes may idle for at the job's end. Of a job queued input
    by input, none: an input claimed early may wait here while another node idles."""
    if assignment.run_length == 1:
        return 0
    claim_s = assignment.claim_s or FIRST_CLAIM_S
    ahead = 0
    for worker in assignment.workers:
        if (per_input := _per_input_s(worker, assignment, claim_s)) is not None:
            ahead += worker.batch * (2 if 2 * claim_s >= per_input else 1)
    return ahead


def _room(worker: Worker, assignment: Assignment) -> int:
    """Inputs the worker can take now: a frame of work, and a second one behind it while
    its inputs are short. Whole frames only: results come back a few at a time
    (container_service.worker.SEND_EVERY), and a refill after each few would cut the
    frames down to that size."""
    growing = assignment.growing
    if worker.name in assignment.parked or (growing is not None and worker.name in growing.park):
        return 0
    frames = 1 if _per_input_s(worker, assignment, assignment.claim_s) is None else 2
    free = frames * worker.batch - len(worker.inflight)
    return free if free >= worker.batch else 0


def _per_input_s(worker: Worker, assignment: Assignment, claim_s: float) -> float | None:
    """How long the worker's inputs take, if they are short enough to queue a frame
    behind the one it runs, with claims that take `claim_s`; None if not."""
    # The job's slowest input so far, too: a job's inputs may take 0.1 s or 4 minutes,
    # and one queued behind a long one waits for it while other workers go idle.
    per_input = max(worker.per_input_s, assignment.slowest_s)
    short = per_input < PREFETCH_BELOW_S
    return per_input if short or per_input * CLAIM_IDLE_SHARE < claim_s else None


def _look(worker: Worker) -> WorkerLook:
    status = read_status(worker.status_file)
    if status is None:
        return WorkerLook(worker.name, None, 0.0, bool(worker.inflight))
    return WorkerLook(worker.name, status.index, status.started_at, bool(worker.inflight))


def _say(what: str, error: BackendUnavailableError) -> None:
    print(f"node_service: {what} failed, tried again later: {error}", file=sys.stderr)
