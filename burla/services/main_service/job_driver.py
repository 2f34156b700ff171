"""The jobs' side of main_service: a job from its start to its last event.

Each running job has an InputMachine (burla.core.inputs) that decides what the nodes'
reports mean: a result recorded, a try used up, inputs back to the queue, a worker to
stop, the job finished. This module feeds it those reports and carries out its
commands: Store writes and acks, a line on the job's stream for its client, and the
job's nodes handed back to the cluster when it ends.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Mapping
from functools import partial
from itertools import accumulate
from typing import Any

import anyio
import anyio.lowlevel

from burla.core import inputs as i
from burla.core import report_wire, stream_wire, wire, worker_wire
from burla.core.clock import Clock
from burla.core.errors import NotFoundError
from burla.core.inputs import Failure, InputStatus
from burla.core.models import JobState
from burla.core.protocols import BlobStore, Store
from burla.core.scheduling import most_nodes, node_type_for, slots_on
from burla.core.trace import mark
from burla.services.cluster_keys import JobTokens
from burla.services.handed_inputs import is_handed
from burla.services.input_runs import (
    grown_input,
    handed_each,
    in_runs,
    one_input,
    run_lengths,
    runs_of_items,
)
from burla.services.main_service.budgets import Budgets
from burla.services.main_service.catch_up import CatchUp
from burla.services.main_service.cluster_driver import ClusterDriver
from burla.services.main_service.failure_texts import failure_text, ran_out_text
from burla.services.main_service.held_jobs import TRIM_EVERY_S, HeldJobs
from burla.services.main_service.job_logs import FLUSH_EVERY_S, MEMORY_STREAM
from burla.services.main_service.job_records import JobRecords
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.resumes import Resumption
from burla.services.main_service.retention import (
    PRUNE_AFTER_SHARE,
    PRUNE_EVERY_S,
    RESULTS_LIMIT_BYTES,
    Forgotten,
    forget_oldest,
)
from burla.services.result_pages import FAILED, RESUMED, results_every_s, write_results
from burla.services.retrying import PatientStore, patiently
from burla.services.store_keys import queue_name


class JobDriver:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        clock: Clock,
        nodes: ClusterDriver,
        job_tokens: JobTokens,
        *,
        jobs: dict[str, JobRun],
        spawn: Callable[..., None],
        results_limit_bytes: int = RESULTS_LIMIT_BYTES,
    ) -> None:
        """`jobs` are the running jobs (and finished ones, see HeldJobs), which the
        cluster's side reads too. Finished jobs' results stay in the Store within
        `results_limit_bytes` (see retention)."""
        self.store = store
        self.patient = PatientStore(store)
        """The Store for the work the driver does on its own (acting on a node's report,
        writing records and lines): it waits for a Store that is down to come back."""
        self.blobs = blobs
        self.clock = clock
        self.nodes = nodes
        self.job_tokens = job_tokens
        self._spawn = spawn
        self.jobs = jobs
        self.canceled_early: collections.deque[str] = collections.deque(maxlen=1000)
        """Jobs canceled before their submission arrived: canceled the moment it does."""
        self.taken_over = anyio.Event()
        """Set once the jobs an earlier main_service left running are this one's: a new
        job waits for it, so that it is never taken for one of them."""
        self.last_activity = clock.now()
        self.results_limit_bytes = results_limit_bytes
        self.held = HeldJobs(jobs, clock)
        self.records = JobRecords(self.patient, clock)
        self.catch_up = CatchUp(self.patient, blobs, clock, spawn, self.handle)
        self._next_results_prune = clock.now()
        self._results_since_prune = 0
        self.budgets = Budgets(clock, self.stop_over_budget)

    async def start(
        self,
        run: JobRun,
        items: list[tuple[str, bytes]],
        digests: Mapping[int, bytes] | None = None,
        resumed: Resumption | None = None,
    ) -> None:
        """Queue the job's inputs and hand it to the cluster. A job that resumes another
        first takes the results it reuses from it, and queues only the other inputs. The
        job's first nodes get inputs with their assignments (services.handed_inputs) and
        only the rest are queued: a small job's an item per input (each holds its input),
        a big job's in runs of inputs, which read them from its pages, written first
        (_queue_the_rest). A small job's pages are written with its first record, or
        before an input is queued again (job_records)."""
        job_id = run.spec.job_id
        self.adopt(run)
        self.last_activity = self.clock.now()
        kept = items
        if resumed is not None:
            items = await self._take_results(run, items, resumed)
        config = self.nodes.machine.config
        nodes = most_nodes(config, run.spec)
        workers = slots_on(node_type_for(config, run.spec), run.spec)
        big = in_runs(len(items), nodes)
        if big:
            run.handed_each = handed_each(len(items), nodes, workers)
            rest = len(items) - nodes * run.handed_each
            run.run_length = run_lengths(rest, nodes, workers)[0]
            run.results_every_s = results_every_s(nodes)
        run.to_hand_out = collections.deque(items)
        mark("main_service queued the inputs")
        starts = not run.machine.state.finished and job_id not in self.canceled_early
        if not (big and starts):
            self.records.cut_pages(run, kept, digests)
        if run.machine.state.finished:
            await self._finish(run, run.machine.state)
        elif job_id in self.canceled_early:
            await self.handle(run, i.CancelJob())
        else:
            await self.nodes.job_started(run.spec)
        if big and starts:
            # Its nodes are told first: cutting a million inputs into pages takes a second.
            await anyio.lowlevel.checkpoint()
            self.records.cut_pages(run, kept, digests)
        await self._queue_the_rest(run, nodes, workers)
        self._spawn(self.records.record_later, run)

    async def _queue_the_rest(self, run: JobRun, nodes: int, workers: int) -> None:
        """Queue the inputs that the job's first nodes were not handed: a big job's in
        runs (input_runs.run_lengths, for a job on up to `nodes` nodes of `workers`
        each), once its pages are written. Nodes have the job already: a Store that is
        down is waited for."""
        rest, run.to_hand_out = run.to_hand_out, None
        if rest is None or run.state.finished:
            return
        if run.run_length > 1 and rest:
            await self.records.keep_pages(run)
            lengths = run_lengths(len(rest), nodes, workers)
            rest = collections.deque(runs_of_items(list(rest), lengths))
        if rest:
            await self.patient.push(queue_name(run.spec.job_id), list(rest))
        self.nodes.backlog(run.spec.job_id, run.backlog())  # nodes that boot join for these

    async def queue_unfinished(self, run: JobRun) -> None:
        """A job taken over: queue each input handed out with an assignment that it has
        not finished on its own, read from its pages (they are in no queue, and the nodes
        that held them were reset or lost); of a small job, every unfinished input (one
        that is in the queue stays as it is). A big job's queue holds its runs, and what
        came back of them."""
        inputs = run.machine.inputs
        if run.run_length > 1:
            waiting = [n for n in run.handed if not inputs[n].status.finished]
        else:
            waiting = [n for n, record in enumerate(inputs) if not record.status.finished]
        if waiting:
            await self.patient.push(queue_name(run.spec.job_id), list(map(one_input, waiting)))

    def adopt(self, run: JobRun) -> None:
        """Hold the job (a new one, or one taken over), and keep it to its max_cost."""
        self.jobs[run.spec.job_id] = run
        self.budgets.watch(run)

    async def stop_over_budget(self, run: JobRun) -> None:
        """Cancel a job whose cost reached its max_cost; its client is told why, and its
        record keeps it. The results its inputs finished stay, as any job's do."""
        now = self.clock.now()
        counts = run.counts()
        stop = stream_wire.BudgetStop(
            max_cost=float(run.spec.max_cost or 0.0),
            cost=run.node_time.priced_usd(now),
            node_seconds=run.node_time.node_seconds(now),
            finished=counts["succeeded"] + counts["failed"],
        )
        run.budget_stop = {
            "max_cost": stop.max_cost,
            "cost": stop.cost,
            "node_seconds": stop.node_seconds,
            "finished": stop.finished,
        }
        run.publish(stop)
        await self.handle(run, i.CancelJob())

    async def _take_results(
        self, run: JobRun, items: list[tuple[str, bytes]], resumed: Resumption
    ) -> list[tuple[str, bytes]]:
        """Copy the results a resumed job reuses into it (durable before its client is
        told of them, as every result is) and tell its input machine which inputs need
        not run; the queue items of those that do."""
        job_id, plan = run.spec.job_id, resumed.plan
        reused = [(index, "ok", resumed.results[index], RESUMED) for index in plan.reused]
        await write_results(self.store, self.blobs, job_id, reused)
        for index, kind, payload, _ in reused:
            run.publish(stream_wire.JobResult(index, kind), payload)
        run.skipped = plan.skipped
        run.machine.handle(i.Resumed(plan.reused, plan.skipped))
        done = {*plan.reused, *plan.skipped}
        return [item for item in items if int(item[0]) not in done]

    def running(self) -> list[JobRun]:
        """The jobs that have not ended."""
        return [run for run in self.jobs.values() if not run.state.finished]

    def running_images(self) -> set[str]:
        """The images running jobs use."""
        return {run.spec.image for run in self.running() if run.spec.image is not None}

    def job(self, job_id: str) -> JobRun:
        run = self.jobs.get(job_id)
        if run is None:
            raise NotFoundError(f"no job {job_id} is running here; check the id with `burla jobs`")
        return run

    def job_of_token(self, token: str) -> JobRun | None:
        """The running job whose token this is: code running in it calls back as its owner."""
        job_id = self.job_tokens.job_of(token, self._running_owner)
        return None if job_id is None else self.jobs[job_id]

    def _running_owner(self, job_id: str) -> str | None:
        run = self.jobs.get(job_id)
        return None if run is None or run.state.finished else run.owner

    async def cancel(self, job_id: str, *, failed: bool = False) -> bool:
        """Stop a running job (`failed`: its caller stopped at an input's error); False if
        there is none of that id (yet)."""
        run = self.jobs.get(job_id)
        if run is None:
            return False
        if not run.state.finished:
            await self.handle(run, i.CancelJob(failed=failed and run.failure is not None))
        return True

    async def report(self, node_id: str, events: Any, payload: bytes) -> None:
        """What a node saw, in order: claims, results, printed lines, lost workers."""
        mark("main_service hears a node")
        for event, data in report_wire.read_reports(events, payload):
            run = self.jobs.get(event.job_id) if event.job_id else None
            if run is None or run.state.finished:
                continue
            match event:
                case report_wire.RunsReport():
                    run.claimed(node_id, event)
                case report_wire.ClaimReport(_, worker, indices, receipts, memory_gb):
                    pairs = zip(indices, receipts, strict=True)
                    run.receipts.update((n, r) for n, r in pairs if not is_handed(r))
                    run.held(receipts)
                    run.worker_nodes[worker] = node_id
                    await self.handle(run, i.InputsClaimed(worker, node_id, indices, memory_gb))
                case report_wire.ResultsReport():
                    await self._results(run, event, data)
                case report_wire.LineReport(_, index, stream, text):
                    if stream == wire.TRACEBACK_STREAM:
                        run.keep_traceback(index, text)
                    else:
                        run.publish(stream_wire.JobLine(index, stream, text))
                case report_wire.DeathReport(_, worker, running, out_of_memory, memory_gb, node_gb):
                    died = i.WorkerDied(worker, running, out_of_memory, memory_gb, node_gb)
                    await self.handle(run, died)
                case report_wire.TimeoutReport(_, worker, index):
                    await self.handle(run, i.InputTimedOut(worker, index))
                case report_wire.DrainedReport(_):
                    await self.nodes.node_drained(node_id, run.spec.job_id)
                case worker_wire.JobErrorReport(_, message):
                    run.error = message
                    await self.handle(run, i.CancelJob())
        self.last_activity = self.clock.now()

    async def _results(
        self, run: JobRun, report: report_wire.ResultsReport, payload: bytes
    ) -> None:
        """A worker's results, in order: those that succeeded in a row go to the input
        machine as one event; each result reaches the job's stream once."""
        inputs = run.machine.inputs
        indices = report.indices
        if set(report.kinds) <= {"ok"} and len(set(indices)) == len(indices):
            # The common case, column by column: every input succeeded, each once.
            ends = list(accumulate(report.sizes))
            results = [payload[a:b] for a, b in zip([0, *ends], ends, strict=False)]
            new = [n for n, index in enumerate(indices) if not inputs[index].status.finished]
            if len(new) < len(indices):
                run.publish_results([indices[n] for n in new], [results[n] for n in new])
            else:
                run.publish_results(indices, results)
            await self.handle(run, i.InputsSucceeded(report.worker, indices))
            return
        succeeded: dict[int, None] = {}
        fresh: list[int] = []
        kept: list[bytes] = []
        for index, kind, data in report.outcomes(payload):
            if kind == "ok":
                if index not in succeeded and not inputs[index].status.finished:
                    fresh.append(index)
                    kept.append(data)
                succeeded[index] = None
                continue
            if succeeded:
                run.publish_results(fresh, kept)
                await self.handle(run, i.InputsSucceeded(report.worker, tuple(succeeded)))
                succeeded, fresh, kept = {}, [], []
            if run.state.finished:
                return
            run.raised[index] = (kind, data)
            run.settle(index)
            await self.handle(run, i.InputRaised(report.worker, index))
        if succeeded:
            run.publish_results(fresh, kept)
            await self.handle(run, i.InputsSucceeded(report.worker, tuple(succeeded)))

    async def node_lost(self, job_id: str, node_id: str) -> None:
        run = self.jobs.get(job_id)
        if run is not None and not run.state.finished:
            await self.handle(run, i.NodeLost(node_id))
            await self._take_back_runs(run, node_id)
            # What it finished but had not reported (a result is written, then acked,
            # then reported) is in the Store, and out of the queue: look for it there.
            self.catch_up.keep_looking(run)

    async def _take_back_runs(self, run: JobRun, node_id: str) -> None:
        """The runs a lost node held: their inputs that are neither done nor held by
        another node go in the queue on their own, and the runs are acked, so that they
        are not run again whole once their leases run out."""
        receipts = [r for r, held in run.runs.items() if held.node == node_id]
        if not receipts:
            return
        inputs = run.machine.inputs
        waiting = [
            n
            for held in map(run.let_go, receipts)
            for n in range(held.first, held.first + held.count)
            if inputs[n].status is InputStatus.QUEUED
        ]
        await self._queue_alone(run, waiting)
        await self.patient.ack(queue_name(run.spec.job_id), receipts)

    async def _queue_alone(self, run: JobRun, indices: list[int]) -> None:
        """Queue inputs of runs, or handed out, again as items of their own (once: an
        item's id is its input's index, and a queue keeps one item per id), which read
        them from the job's pages."""
        if alone := [n for n in indices if n not in run.on_their_own]:
            await self.records.keep_pages(run)
            await self.patient.push(queue_name(run.spec.job_id), [one_input(n) for n in alone])
            run.on_their_own.update(alone)

    async def handle(self, run: JobRun, event: i.InputEvent) -> None:
        job_id = run.spec.job_id
        requeue: list[str] = []
        alone: list[int] = []
        grown: list[tuple[int, float]] = []
        for command in run.machine.handle(event):
            match command:
                case i.Requeue(indices):
                    # An input that came in a run goes back on its own: the run is its
                    # node's; so does one handed out with an assignment (no receipt).
                    for n in indices:
                        receipt = run.receipts.get(n)
                        if receipt is None or receipt in run.runs:
                            alone.append(n)
                            run.settle(n)
                        else:
                            requeue.append(receipt)
                case i.Grow(index, memory_gb):
                    grown.append((index, memory_gb))
                    run.settle(index)
                case i.Discard(_, indices):
                    # A run's input runs again: its node acks the run when all of it ended.
                    stale = [r for n in indices if (r := run.receipts.get(n)) not in run.runs]
                    await self.patient.ack(queue_name(job_id), [r for r in stale if r])
                case i.KillWorker(worker, _):
                    node_id = run.worker_nodes.get(worker)
                    if node_id is not None:
                        self.nodes.kill_worker(node_id, worker, job_id)
                case i.RecordFailure(index):
                    await self._record_failure(run, command)
                    run.settle(index)
                case i.FinishJob(state):
                    await self._finish(run, state)
        if grown:
            await self._queue_grown(run, grown)
        if requeue:
            await self.patient.renew(queue_name(job_id), requeue, lease_s=0)
        await self._queue_alone(run, alone)
        # Durable now (queued alone, grown or recorded failed): the node left the acks of
        # these runs to main_service.
        if run.settling and not run.state.finished and (settled := run.settled_runs()):
            await self.patient.ack(queue_name(job_id), settled)
        if not run.state.finished:
            self.nodes.backlog(job_id, run.backlog())

    async def _queue_grown(self, run: JobRun, grown: list[tuple[int, float]]) -> None:
        """Queue inputs that ran out of memory again, each as an item of its own for a
        worker of more memory (input_runs.grown_input), then let go of the items they
        came in (a run is acked by its node, once all of it ended there). The new items
        read their inputs from the job's pages, which every job writes first."""
        queue = queue_name(run.spec.job_id)
        await self.records.keep_pages(run)
        await self.patient.push(queue, [grown_input(n, gb) for n, gb in grown])
        run.on_their_own.update(n for n, _ in grown)
        done = [r for n, _ in grown if (r := run.receipts.get(n)) is not None]
        if stale := [r for r in done if r not in run.runs]:
            await self.patient.ack(queue, stale)
        for index, memory_gb in grown:
            tried = run.machine.inputs[index].ran_out[-1]
            text = ran_out_text(tried, memory_gb)
            run.log.add(index, MEMORY_STREAM, text)

    async def _record_failure(self, run: JobRun, failed: i.RecordFailure) -> None:
        job_id = run.spec.job_id
        index, failure, attempts = failed.index, failed.failure, failed.attempts
        if failure is Failure.RAISED:
            kind, payload = run.raised.pop(index)
        else:
            why = failure_text(run, failed)
            message = (
                f"input {index} failed after {attempts} tries: {why}"
                if attempts
                else f"input {index} failed: {why}"
            )
            kind, payload = failure.value, json.dumps({"message": message}).encode()
        if run.failure is None:
            run.failure = run.failure_of(index, kind, payload)
        await write_results(self.patient, self.blobs, job_id, [(index, kind, payload, FAILED)])
        receipt = run.receipts.get(index)
        if receipt is not None and receipt not in run.runs:
            await self.patient.ack(queue_name(job_id), [receipt])
        run.publish(stream_wire.JobResult(index, kind), payload)

    async def _finish(self, run: JobRun, state: JobState) -> None:
        job_id = run.spec.job_id
        if run.error is not None:
            state = JobState.FAILED
        mark("main_service ends the job")
        run.state, run.ended_at = state, self.clock.now()
        run.node_time.end(run.ended_at)
        run.publish(stream_wire.JobDone(state.value, run.error))  # results are durable already
        # The client waiting for the job gets its answer before what follows is written.
        await anyio.lowlevel.checkpoint()
        # A recycled node stops the job and resets in one request; a deleted one just goes.
        cancel = state is not JobState.SUCCEEDED
        await self.nodes.job_ended(job_id, cancel=cancel, reset=run.nodes_reset)
        await run.log.flush(self.patient)  # before the record says it ended
        await self.records.save(run)
        self.last_activity = self.clock.now()
        self.held.add(run)
        self._results_since_prune += run.result_bytes + run.input_bytes
        if (
            self.clock.now() >= self._next_results_prune
            or self._results_since_prune > self.results_limit_bytes * PRUNE_AFTER_SHARE
        ):
            self._next_results_prune = self.clock.now() + PRUNE_EVERY_S
            self._results_since_prune = 0
            prune = partial(self.forget_finished, self.results_limit_bytes)
            self._spawn(patiently, "pruning finished jobs' results", prune)

    async def forget_finished(self, limit_bytes: int) -> Forgotten:
        """Keep the results of finished jobs in the Store within `limit_bytes`, removing
        the jobs that finished longest ago (see retention), from memory too."""
        running = {run.spec.job_id for run in self.running()}
        forgotten = await forget_oldest(self.store, self.blobs, limit_bytes, running)
        for job_id in forgotten.jobs:
            self.held.forget(job_id)
        held = {d for run in self.jobs.values() if (d := run.function_digest) is not None}
        await self.records.functions.sweep(forgotten.functions | held)
        return forgotten

    async def keep_logs_stored(self) -> None:
        """Store the jobs' new lines every FLUSH_EVERY_S."""
        while True:
            await anyio.sleep(FLUSH_EVERY_S)
            for run in list(self.jobs.values()):
                if run.log.unsaved:
                    await run.log.flush(self.patient)

    async def fail(self, run: JobRun, error: str) -> None:
        """End a job that cannot go on, saying why."""
        run.error = error
        await self._finish(run, JobState.FAILED)

    async def keep_memory(self) -> None:
        """Forget finished jobs as HeldJobs says, also when no job ends for a while."""
        while True:
            await anyio.sleep(TRIM_EVERY_S)
            self.held.trim()
