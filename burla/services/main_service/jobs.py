"""One running job as main_service sees it: its input machine and the stream to its client."""

from __future__ import annotations

import collections
import functools
import itertools
import json
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from burla.core import report_wire, stream_wire
from burla.core.clock import Clock
from burla.core.cost import NodeTime
from burla.core.inputs import InputMachine, InputsHandedOut, InputStatus, Resumed
from burla.core.models import JobSpec, JobState
from burla.core.protocols import Data
from burla.core.resume import indices_in, ranges
from burla.services.handed_inputs import HANDED_BYTES
from burla.services.main_service.job_logs import JobLog
from burla.services.main_service.kept_functions import function_digest
from burla.services.main_service.users import ADMIN, owner_of

StreamEvent = tuple[stream_wire.JobEvent, bytes]
KEPT_TRACEBACKS = 1000
KEPT_GROWN = 1000
"""Inputs a job's record names that succeeded after running out of memory, at most."""
FAILURE_ERRORS = {
    "worker_died": "WorkerCrashedError",
    "out_of_memory": "OutOfMemoryError",
    "timed_out": "InputTimeoutError",
    "lost": "NodeLostError",
}
"""The error a caller gets for an input that failed without raising (by Failure)."""


@dataclass
class HeldRun:
    """A run of inputs (services.input_runs) a node claimed."""

    node: str
    first: int
    count: int
    unseen: int
    """Its inputs no worker of the node was reported to hold yet."""


@dataclass
class JobRun:
    spec: JobSpec
    function: bytes | None
    """The pickled function, when it came with the job; else it waits at `function_key`."""
    function_key: str | None
    machine: InputMachine
    owner: str = ADMIN
    """The user who submitted it: only they (and the admin) may see or cancel it."""
    receipts: dict[int, str] = field(default_factory=dict)
    """Latest receipt of each input's queue item, as nodes reported their claims."""
    worker_nodes: dict[str, str] = field(default_factory=dict)
    raised: dict[int, tuple[str, bytes]] = field(default_factory=dict)
    """The last exception each input raised, recorded as its result if it fails for good."""
    stream: list[StreamEvent] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)
    read_to_end: bool = False
    """A reader has had the stream's last event: its client needs it no more."""
    record_lock: anyio.Lock = field(default_factory=anyio.Lock)
    ended_saved: anyio.Event = field(default_factory=anyio.Event)
    """Set once its record in the Store says it ended, with what it keeps: its client
    hears of the end before, and a job that resumes it waits for the record."""
    nodes_reset: anyio.Event = field(default_factory=anyio.Event)
    """Set once the nodes it ended on have answered their reset (or are gone): each has
    made the results it finished durable, which a job that resumes it reads."""
    state: JobState = JobState.RUNNING
    error: str | None = None
    failure: dict[str, Any] | None = None
    """The first input that failed for good: its index, the exception's type, and its
    message (see failure_of)."""
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    """Names this stream of the job's events: a main_service that takes the job over
    after a restart starts another, which its clients read from the start."""
    blob_prefixes: set[str] = field(default_factory=set)
    """Where its function and big inputs are in the blob store: kept with its results."""
    tracebacks: dict[int, str] = field(default_factory=dict)
    """The text of the last traceback each input raised (as its worker wrote it), for
    people to read: the pickled exception itself is only for the client."""
    submitted_at: float = 0.0
    ended_at: float | None = None
    result_bytes: int = 0
    """The size of the results published: what the job keeps in the Store once it ends."""
    input_bytes: int = 0
    """The size of the inputs it keeps in the Store, beside its results."""
    pages_to_write: dict[str, Data] | None = None
    """Its input pages while they are not in the Store yet: a small job's are written
    with its first record, or before the first queue item that reads them (JobDriver)."""
    package_keys: tuple[str, ...] = ()
    """The archives of the packages it needs, in the blob store."""
    skipped: tuple[int, ...] = ()
    """Inputs it does not run: it resumes a job and runs only the inputs that failed
    there (burla.core.resume)."""
    run_length: int = 1
    """The most inputs one item of its queue holds (services.input_runs)."""
    runs: dict[str, HeldRun] = field(default_factory=dict)
    """The runs of inputs nodes claimed, by receipt."""
    in_runs_unseen: int = 0
    """Inputs of those runs that no worker was reported to hold: out of the queue, but
    still queued as the input machine sees them."""
    on_their_own: set[int] = field(default_factory=set)
    """Inputs queued again as items of their own: of runs, or handed out with an
    assignment (services.handed_inputs)."""
    settling: set[str] = field(default_factory=set)
    """Runs with an input their node let go (it raised, or its worker went): the node
    leaves their acks to main_service, once every input of each is settled."""
    to_hand_out: collections.deque[tuple[str, bytes]] | None = None
    """The queue items of its inputs, while its first nodes are told: each is handed as
    many as it runs at once, or handed_each if that is more; the rest are queued then."""
    handed_each: int = 0
    """Inputs each of its first nodes is handed at least (a job queued in runs:
    input_runs.handed_each)."""
    results_every_s: float = 0.0
    """How often each of its nodes writes and reports results at most while busy
    (result_pages.results_every_s)."""
    handed: list[int] = field(default_factory=list)
    """The inputs of a job queued in runs that were handed out: in no queue, so a
    main_service that takes it over queues those it finds unfinished."""
    listed_running: bool = False
    """Whether the Store lists it among the running jobs (store_keys.running_key)."""
    look_in_store_until: float = 0.0
    """Until when results no node reported are looked for in the Store (after a takeover
    or a lost node); one task looks, however many reasons there are."""
    look_in_store_again: anyio.Event | None = None
    """Set for the task that looks to start over with short pauses (None: none looks)."""
    node_time: NodeTime = field(default_factory=NodeTime)
    """The time it held its nodes, and their price: what it cost (burla.core.cost)."""
    budget_stop: dict[str, Any] | None = None
    """Set when its cost reached its max_cost and it was stopped: the cap, the cost, its
    node-seconds and how many inputs had finished (stream_wire.BudgetStop's fields)."""
    log: JobLog = field(init=False)
    """Its printed lines and failures, numbered, as people read them (not its client)."""

    def __post_init__(self) -> None:
        self.log = JobLog(self.spec.job_id)

    @functools.cached_property
    def function_digest(self) -> str | None:
        """What its record names its function by (kept_functions), worked out once; None
        for a function uploaded instead."""
        return None if self.function is None else function_digest(self.function)

    def claimed(self, node_id: str, runs: report_wire.RunsReport) -> None:
        """A node claimed these runs."""
        for receipt, first, count in zip(runs.receipts, runs.firsts, runs.counts, strict=True):
            self.runs[receipt] = HeldRun(node_id, first, count, count)
            self.in_runs_unseen += count

    def hand_out(self, node_id: str, workers: int) -> list[tuple[str, bytes]]:
        """Inputs for `node_id` to start with on its `workers`, held as the node's (none
        once its first nodes were told): one per worker, or handed_each, within
        HANDED_BYTES."""
        waiting = self.to_hand_out
        if not waiting:
            return []
        handed = [waiting.popleft() for _ in range(min(workers, len(waiting)))]
        size = sum(len(data) for _, data in handed)
        while waiting and len(handed) < self.handed_each and size < HANDED_BYTES:
            handed.append(waiting.popleft())
            size += len(handed[-1][1])
        indices = tuple(int(i) for i, _ in handed)
        if self.run_length > 1:
            self.handed += indices
        self.machine.handle(InputsHandedOut(node_id, indices))
        return handed

    def held(self, receipts: Iterable[str]) -> None:
        """A node's workers hold inputs claimed under these receipts."""
        for receipt, count in Counter(receipts).items():  # a run's inputs share its receipt
            if (held := self.runs.get(receipt)) is not None and held.unseen:
                seen = min(count, held.unseen)
                held.unseen -= seen
                self.in_runs_unseen -= seen

    def let_go(self, receipt: str) -> HeldRun:
        """A run its node no longer holds."""
        held = self.runs.pop(receipt)
        self.in_runs_unseen -= held.unseen
        return held

    def settle(self, index: int) -> None:
        """Input `index` ended on its node without a result: main_service acks the run it
        came in (if any) once all of that run is settled."""
        receipt = self.receipts.get(index)
        if receipt is not None and receipt in self.runs:
            self.settling.add(receipt)

    def settled_runs(self) -> list[str]:
        """The runs in `settling` all of whose inputs are finished or queued on their
        own, now no longer held; each run's receipt, for main_service to ack."""
        inputs = self.machine.inputs
        done: list[str] = []
        for receipt in list(self.settling):
            held = self.runs.get(receipt)
            if held is not None and not all(
                inputs[n].status.finished or n in self.on_their_own
                for n in range(held.first, held.first + held.count)
            ):
                continue
            self.settling.discard(receipt)
            if held is not None:
                self.let_go(receipt)
                done.append(receipt)
        return done

    def backlog(self) -> int:
        """Inputs that wait in the job's queue for a node to claim them."""
        return max(0, self.machine.queued - self.in_runs_unseen)

    def keep_traceback(self, index: int, text: str) -> None:
        if index in self.tracebacks or len(self.tracebacks) < KEPT_TRACEBACKS:
            self.tracebacks[index] = text

    def publish(self, event: stream_wire.JobEvent, payload: bytes = b"") -> None:
        self.stream.append((event, payload))
        match event:
            case stream_wire.JobLine(index, stream, text):
                self.log.add(index, stream, text)
            case stream_wire.JobResult(index, kind):
                self.result_bytes += len(payload)
                if kind != "ok":
                    self.log.add(index, "error", self.failure_text(index, kind, payload))
        self.changed.set()

    def publish_results(self, indices: Sequence[int], results: Sequence[bytes]) -> None:
        """Results of inputs that succeeded, input `indices[n]`'s in `results[n]`: one
        event each on the stream, as publish would add them, and one wake of its readers
        for them all."""
        if not indices:
            return
        self.stream.extend(zip(stream_wire.succeeded(indices), results, strict=True))
        self.result_bytes += sum(map(len, results))
        self.changed.set()

    def failure_of(self, index: int, kind: str, payload: bytes) -> dict[str, Any]:
        """What people are told of a failed input: the type and message of its exception
        (from the last line of its traceback), or the cluster's own reason."""
        if kind == "raised":
            text = self.tracebacks.get(index, "")
            last = text.rstrip().rsplit("\n", 1)[-1] if text else "an exception (not kept)"
            error_type, _, message = last.partition(": ")
            return {"input": index, "type": error_type, "message": message}
        details = json.loads(payload)
        if kind == "raised_text":
            error_type = str(details["type"]).rsplit(".", 1)[-1]
            return {"input": index, "type": error_type, "message": str(details["message"])}
        return {"input": index, "type": FAILURE_ERRORS[kind], "message": str(details["message"])}

    def memory(self) -> dict[str, Any] | None:
        """The inputs that succeeded after running out of memory (core.memory), the first
        KEPT_GROWN of them: the memory of each try that ran out, and of the one that
        succeeded; and how many there were. None if none did."""
        grew = self.machine.grew
        if not grew:
            return None
        inputs = self.machine.inputs
        shown = [
            {
                "input": index,
                "ran_out_with": list(inputs[index].ran_out),
                "succeeded_with": inputs[index].memory_gb or self.spec.func_ram,
            }
            for index in itertools.islice(grew, KEPT_GROWN)
        ]
        return {"grew": shown, "count": len(grew)}

    def cost(self, now: float) -> dict[str, Any]:
        """Its node-seconds so far, what they cost in USD (None: some had no price), and
        where the prices come from."""
        return {
            "node_seconds": self.node_time.node_seconds(now),
            "usd": self.node_time.usd(now),
            "basis": "; ".join(sorted(self.node_time.sources)),
        }

    def counts(self) -> dict[str, int]:
        """Inputs that succeeded, failed, never ran (the job stopped first), and the rest."""
        ended = Counter(self.machine.outcomes.values())  # not a look at every input
        return {
            "succeeded": ended[InputStatus.SUCCEEDED],
            "failed": ended[InputStatus.FAILED],
            "never_run": ended[InputStatus.CANCELED],
            "unfinished": self.machine.unfinished,
        }

    def failure_text(self, index: int, kind: str, payload: bytes) -> str:
        """Why an input failed, as text: the traceback its worker wrote, or the cluster's
        own message. A raised exception's pickled bytes are the client's, not ours."""
        if kind == "raised":
            return self.tracebacks.get(index, f"input {index} raised (its traceback was not kept)")
        details = json.loads(payload)
        if kind == "raised_text":
            return str(details["traceback"])
        return str(details["message"])

    async def wait_for_lines(self, after: int, timeout_s: float) -> None:
        """Return once its log has more than `after` lines or it ended, or time's up."""
        with anyio.move_on_after(timeout_s):
            while not self.done_streaming and self.log.count <= after:
                if self.changed.is_set():
                    self.changed = anyio.Event()
                await self.changed.wait()

    async def wait_after(self, cursor: int, timeout_s: float, *, until_done: bool = False) -> None:
        """Return once the stream holds more than `cursor` events (with `until_done`: once
        the job's last event is out), or when time's up."""
        with anyio.move_on_after(timeout_s):
            while not self.done_streaming and (until_done or len(self.stream) <= cursor):
                if self.changed.is_set():
                    self.changed = anyio.Event()
                await self.changed.wait()

    def events_after(self, cursor: int) -> list[StreamEvent]:
        """The stream's events after `cursor`, for a reader."""
        new = self.stream[cursor:]
        if self.done_streaming and new:
            self.read_to_end = True
        return new

    @property
    def done_streaming(self) -> bool:
        return bool(self.stream) and isinstance(self.stream[-1][0], stream_wire.JobDone)


def job_record(run: JobRun, now: float) -> dict[str, Any]:
    """The job's record in the Store as of `now`. While the job runs it holds what a
    main_service that restarts needs to take the job over (its function among them, by
    its digest: see kept_functions); once it ends, only what later readers want: spec,
    state, why it failed, its cost."""
    record: dict[str, Any] = {
        "spec": run.spec.model_dump(mode="json"),
        "state": run.state.value,
        "error": run.error,
        "failure": run.failure,
        "counts": run.counts(),
        "owner": run.owner,
        "cost": run.cost(now),
    }
    if run.budget_stop is not None:
        record["budget_stop"] = run.budget_stop
    if (memory := run.memory()) is not None:
        record["memory"] = memory
    if run.ended_at is not None:
        record |= {"ended_at": run.ended_at, "result_bytes": run.result_bytes}
        record["kept"] = {
            "input_bytes": run.input_bytes,
            "function_digest": run.function_digest,
            "function_key": run.function_key,
            "blob_prefixes": sorted(run.blob_prefixes),
        }
    if not run.state.finished:
        record["resume"] = {
            "function_digest": run.function_digest,
            "function_key": run.function_key,
            "blob_prefixes": sorted(run.blob_prefixes),
            "package_keys": list(run.package_keys),
            "input_bytes": run.input_bytes,
            "run_length": run.run_length,
        }
        if run.skipped:
            record["resume"]["skipped"] = ranges(run.skipped)
        if run.handed:
            record["resume"]["handed"] = ranges(run.handed)
    return record


def run_from_record(
    record: dict[str, Any], function: bytes | None, clock: Clock, *, validate: bool
) -> JobRun:
    """A job taken over from its record and its pickled `function` (None if it was
    uploaded): its input machine starts with nothing done; the results already in the
    Store are the caller's to add."""
    spec = JobSpec.model_validate(record["spec"])
    resume = record["resume"]
    machine = InputMachine(
        spec.n_inputs, retries=spec.retries, grow_memory=spec.grow_memory, validate=validate
    )
    cost = record.get("cost") or {}
    # Its node time before the takeover, as last written (at its start, or since).
    node_time = NodeTime(
        float(cost.get("node_seconds") or 0.0),
        cost.get("usd", 0.0),
        [basis] if (basis := cost.get("basis")) else (),
    )
    skipped = indices_in(resume.get("skipped") or ())
    if skipped:  # never queued; the results it reused are in the Store with the others
        machine.handle(Resumed((), skipped))
    return JobRun(
        spec,
        function,
        resume["function_key"],
        machine,
        owner_of(record),
        blob_prefixes=set(resume["blob_prefixes"]),
        package_keys=tuple(resume["package_keys"]),
        input_bytes=int(resume.get("input_bytes") or 0),
        run_length=int(resume.get("run_length") or 1),
        submitted_at=clock.now(),
        node_time=node_time,
        skipped=skipped,
        handed=list(indices_in(resume.get("handed") or ())),
    )
