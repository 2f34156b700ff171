"""The life of a job's inputs as a pure state machine: claims, attempts, returns, cancel.

Workers claim inputs from the Store's queue, or get them with their node's assignment
(handed out: held by the node until one of its workers takes them), and their node
reports what happens; the machine decides what that means. (The Store's queue keeps the
leases: an input whose lease ran out is handed to another worker, which the machine
sees as a new claim. The node decides when an input ran past the job's timeout, by
burla.core's timeout rule, and reports it.) A result is recorded once per input (the
first wins). A failed attempt (the function raised, the worker died while running it,
or it ran past the job's timeout) uses up one of the input's tries; `retries` more tries
follow. An input whose worker or node vanished before it finished goes back to the
queue without using a try, at most `max_returns` times. With `grow_memory`, an input
whose worker went over its memory runs its next try with twice the memory
(burla.core.memory), up to its node's whole memory; one that ran out with the whole node
fails at once. After every step `validate()` checks that no input is lost (each
unfinished input is queued or leased to a known worker) and that no finished input
changes its outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from burla.core.errors import InvariantError
from burla.core.memory import next_memory_gb
from burla.core.models import JobState


class InputStatus(StrEnum):
    QUEUED = "queued"
    LEASED = "leased"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in _ENDED_INPUT


# A set, not a tuple of members: looked up at every report, and a tuple of enum members
# costs ten times as much.
_ENDED_INPUT = frozenset({InputStatus.SUCCEEDED, InputStatus.FAILED, InputStatus.CANCELED})


class Failure(StrEnum):
    """Why an input failed for good."""

    RAISED = "raised"
    WORKER_DIED = "worker_died"
    OUT_OF_MEMORY = "out_of_memory"
    TIMED_OUT = "timed_out"
    LOST = "lost"


# Events --------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputsHandedOut:
    """main_service sent these queued inputs to `node` with its assignment: the node
    holds them until its workers claim them (InputsClaimed), or it is lost."""

    node: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class InputsClaimed:
    worker: str
    node: str
    indices: tuple[int, ...]
    memory_gb: float | None = None
    """The worker's memory, when its node gave it more than the job's func_ram."""


@dataclass(frozen=True)
class InputsSucceeded:
    """The worker's results for these inputs are stored (a node reports them together)."""

    worker: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class InputRaised:
    worker: str
    index: int


@dataclass(frozen=True)
class InputTimedOut:
    """The worker's node stopped it: the input it was running ran past the timeout."""

    worker: str
    index: int


@dataclass(frozen=True)
class WorkerDied:
    """The worker's process ended. `running` is the input it was running, when known
    from the node (the worker may die before it could report that it started it)."""

    worker: str
    running: int | None = None
    out_of_memory: bool = False
    """It was stopped for using more memory than its limit."""
    memory_gb: float | None = None
    """The memory it was held to (when its node says)."""
    node_gb: float | None = None
    """Its node's whole memory (when its node says)."""


@dataclass(frozen=True)
class NodeLost:
    node: str


@dataclass(frozen=True)
class InputRecorded:
    """The input's result is in the Store already, where a main_service that took the
    job over found it: it succeeded, or failed for good."""

    index: int
    succeeded: bool


@dataclass(frozen=True)
class Resumed:
    """The job resumes another (burla.core.resume), before any input is claimed: the
    `reused` inputs succeeded there (their results are copied), the `skipped` ones are
    not to run (they end as never run). Neither is in the queue."""

    reused: tuple[int, ...]
    skipped: tuple[int, ...] = ()


@dataclass(frozen=True)
class CancelJob:
    """Stop the job: its unfinished inputs never run. `failed`: because an input failed
    (its caller stops at the first error), so the job failed rather than was canceled."""

    failed: bool = False


InputEvent = (
    InputsHandedOut
    | InputsClaimed
    | InputsSucceeded
    | InputRaised
    | InputTimedOut
    | WorkerDied
    | NodeLost
    | InputRecorded
    | Resumed
    | CancelJob
)


# Commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Requeue:
    """Make these inputs claimable again now."""

    indices: tuple[int, ...]


@dataclass(frozen=True)
class Grow:
    """Make this input claimable again now, for a worker with `memory_gb` of memory."""

    index: int
    memory_gb: float


@dataclass(frozen=True)
class Discard:
    """These claimed inputs are already finished: ack them without running them."""

    worker: str
    indices: tuple[int, ...]


@dataclass(frozen=True)
class KillWorker:
    worker: str
    reason: str


@dataclass(frozen=True)
class RecordFailure:
    """The input failed for good; record why as its result."""

    index: int
    failure: Failure
    attempts: int
    ran_out: tuple[float, ...] = ()
    """The memory (GB) of each try that went over it, when its node said."""
    node_gb: float | None = None
    """Set when its last try had its node's whole memory, this much: no node of that
    type can give it more."""


@dataclass(frozen=True)
class FinishJob:
    state: JobState


InputCommand = Requeue | Grow | Discard | KillWorker | RecordFailure | FinishJob


@dataclass(init=False)
class InputRecord:
    """One input's life. init=False: a job makes one per input, each of which starts
    with the class's defaults and holds only what changed (a tenth of the cost of an
    __init__ that sets them all)."""

    status: InputStatus = InputStatus.QUEUED
    attempts: int = 0
    returns: int = 0
    worker: str | None = None
    failure: Failure | None = None
    memory_gb: float | None = None
    """The memory of the worker its latest claim went to, when more than func_ram."""
    ran_out: tuple[float, ...] = ()
    """The memory (GB) of each of its tries that went over it."""


_Memory = tuple[float | None, float | None]
"""What a worker that went over its memory was held to, and its node's whole memory (GB)."""


@dataclass
class _Worker:
    node: str
    leased: set[int] = field(default_factory=set)
    handed: bool = False
    """It stands for its node: the inputs handed out to it that no worker claimed yet."""


def handed_to(node: str) -> str:
    """The holder of the inputs handed out to `node` that none of its workers took yet."""
    return f"{node}/handed-out"


class InputMachine:
    """Every input of one job, the workers holding them, and the job's outcome."""

    def __init__(
        self,
        n_inputs: int,
        *,
        retries: int = 0,
        max_returns: int = 5,
        grow_memory: bool = False,
        validate: bool = True,
    ) -> None:
        self.retries = retries
        self.grow_memory = grow_memory
        self.grew: dict[int, None] = {}
        """Inputs that succeeded after running out of memory, in the order they did."""
        self.max_returns = max_returns
        self.inputs = [InputRecord() for _ in range(n_inputs)]
        self.workers: dict[str, _Worker] = {}
        self.state = JobState.RUNNING if n_inputs else JobState.SUCCEEDED
        self.outcomes: dict[int, InputStatus] = {}
        self._unfinished = n_inputs
        self.queued = n_inputs
        """Inputs in the queue: never claimed, or back after their holder went."""
        self._validate = validate

    @property
    def unfinished(self) -> int:
        """Inputs that have not ended (validate checks the count)."""
        return self._unfinished

    def handle(self, event: InputEvent) -> list[InputCommand]:
        if self.state.finished:
            return self._after_finish(event)
        match event:
            case InputsHandedOut(node, indices):
                commands = self._handed_out(node, indices)
            case InputsClaimed(worker, node, indices, memory_gb):
                commands = self._claimed(worker, node, indices, memory_gb)
            case InputsSucceeded(worker, indices):
                commands = self._succeeded(indices)
            case InputRaised(worker, index):
                commands = self._failed_attempt(index, Failure.RAISED)
            case InputTimedOut(worker, index):
                commands = self._timed_out(worker, index)
            case WorkerDied(worker, running, out_of_memory, memory_gb, node_gb):
                if running is not None:
                    self._started(worker, running)
                died = Failure.OUT_OF_MEMORY if out_of_memory else Failure.WORKER_DIED
                memory = (memory_gb, node_gb) if out_of_memory else None
                commands = self._worker_gone(worker, crashed=died, memory=memory)
            case InputRecorded(index, succeeded):
                if not self.inputs[index].status.finished:
                    self._finish(index, InputStatus.SUCCEEDED if succeeded else InputStatus.FAILED)
                commands = []
            case Resumed(reused, skipped):
                commands = self._resumed(reused, skipped)
            case NodeLost(node):
                gone = sorted(w for w, state in self.workers.items() if state.node == node)
                commands = [c for w in gone for c in self._worker_gone(w, crashed=None)]
            case CancelJob(failed):
                commands = self._cancel(failed)
        if not self.state.finished and self._unfinished == 0:
            self.state = self._outcome()
            commands.append(FinishJob(self.state))
        if self._validate:
            self.validate()
        return commands

    def _outcome(self) -> JobState:
        """How a job whose every input finished ended: failed if any failed, canceled if
        any was skipped (never ran), else succeeded."""
        ended = set(self.outcomes.values())
        if InputStatus.FAILED in ended:
            return JobState.FAILED
        if InputStatus.CANCELED in ended:
            return JobState.CANCELED
        return JobState.SUCCEEDED

    def _resumed(self, reused: Iterable[int], skipped: Iterable[int]) -> list[InputCommand]:
        for index in reused:
            if self.inputs[index].status is InputStatus.QUEUED:
                self._finish(index, InputStatus.SUCCEEDED)
        for index in skipped:
            if self.inputs[index].status is InputStatus.QUEUED:
                self._finish(index, InputStatus.CANCELED)
        return []

    def _after_finish(self, event: InputEvent) -> list[InputCommand]:
        if isinstance(event, InputsClaimed):
            return [Discard(event.worker, event.indices)]
        return []

    def _handed_out(self, node: str, indices: Iterable[int]) -> list[InputCommand]:
        holder = self.workers.setdefault(handed_to(node), _Worker(node, handed=True))
        for index in indices:
            record = self.inputs[index]
            if record.status is not InputStatus.QUEUED:
                raise InvariantError(f"input {index} was handed out while {record.status}")
            self._move(record, InputStatus.LEASED)
            record.worker = handed_to(node)
            holder.leased.add(index)
        return []

    def _claimed(
        self, worker: str, node: str, indices: Iterable[int], memory_gb: float | None = None
    ) -> list[InputCommand]:
        holder = self.workers.setdefault(worker, _Worker(node))
        commands: list[InputCommand] = []
        done: list[int] = []
        for index in indices:
            record = self.inputs[index]
            if record.worker is not None and record.worker != worker:
                # Handed out to this node: now one of its workers has it. Otherwise the
                # store handed the input on after the old lease ran out: the old holder
                # counts as gone for this input, within the same bound.
                before = self.workers[record.worker]
                before.leased.discard(index)
                record.worker = None
                taken = before.handed and before.node == node
                if not taken and not self._return(index):
                    commands.append(RecordFailure(index, Failure.LOST, record.attempts))
            status = record.status
            if status in _ENDED_INPUT:
                done.append(index)
                continue
            self.queued -= status is InputStatus.QUEUED  # _move, inline: runs per input
            record.status = InputStatus.LEASED
            record.worker = worker
            record.memory_gb = memory_gb
            holder.leased.add(index)
        return [*commands, Discard(worker, tuple(done))] if done else commands

    def _started(self, worker: str, index: int) -> None:
        """The node says the worker was running this input (when it died)."""
        record = self.inputs[index]
        if record.worker == worker and record.status is InputStatus.LEASED:
            self._move(record, InputStatus.RUNNING)

    def _succeeded(self, indices: Iterable[int]) -> list[InputCommand]:
        """_finish of each input not finished yet, inline: this runs for every input of
        every job."""
        inputs, outcomes, workers = self.inputs, self.outcomes, self.workers
        succeeded = InputStatus.SUCCEEDED
        for index in indices:
            record = inputs[index]
            status = record.status
            if status in _ENDED_INPUT:
                continue
            if index in outcomes:
                raise InvariantError(f"input {index} would be recorded twice")
            if record.worker is not None:
                workers[record.worker].leased.discard(index)
                record.worker = None
            self.queued -= status is InputStatus.QUEUED
            record.status = succeeded
            outcomes[index] = succeeded
            self._unfinished -= 1
            if record.ran_out:
                self.grew[index] = None
        return []

    def _failed_attempt(
        self, index: int, failure: Failure, memory: _Memory | None = None
    ) -> list[InputCommand]:
        """A try of the input failed; `memory`: it went over its worker's memory, of
        (memory, node's memory) GB when its node said."""
        record = self.inputs[index]
        if record.status.finished:
            return []
        record.attempts += 1
        grown = None
        whole_node = None
        ran_out_with, node_gb = memory or (None, None)
        if ran_out_with is not None:
            record.ran_out += (ran_out_with,)
            if self.grow_memory and node_gb is not None:
                grown = next_memory_gb(ran_out_with, node_gb)
                whole_node = node_gb if grown is None else None
        if record.attempts > self.retries or whole_node is not None:
            record.failure = failure
            self._finish(index, InputStatus.FAILED)
            return [RecordFailure(index, failure, record.attempts, record.ran_out, whole_node)]
        self._release(index)
        if grown is not None:
            return [Grow(index, grown)]
        return [Requeue((index,))]

    def _returned(self, index: int) -> list[InputCommand]:
        """The input's holder vanished before it finished: back to the queue, no try used."""
        if self._return(index):
            return [Requeue((index,))]
        return [RecordFailure(index, Failure.LOST, self.inputs[index].attempts)]

    def _return(self, index: int) -> bool:
        """Count a return; False (and the input failed as lost) past `max_returns`."""
        record = self.inputs[index]
        record.returns += 1
        if record.returns > self.max_returns:
            record.failure = Failure.LOST
            self._finish(index, InputStatus.FAILED)
            return False
        self._release(index)
        return True

    def _worker_gone(
        self, worker: str, *, crashed: Failure | None, memory: _Memory | None = None
    ) -> list[InputCommand]:
        """The worker went: the input it was running used up a try if it `crashed` (and
        failed so; `memory`: out of memory, see _failed_attempt), the rest it held go
        back. They count as returned (toward `max_returns`) unless the crash has its
        culprit: inputs that waited behind the input that crashed their worker did
        nothing wrong and never ran."""
        holder = self.workers.pop(worker, None)
        if holder is None:
            return []
        running = [i for i in holder.leased if self.inputs[i].status is InputStatus.RUNNING]
        blameless = crashed is not None and bool(running)
        commands: list[InputCommand] = []
        for index in sorted(holder.leased):
            record = self.inputs[index]
            record.worker = None  # the holder is gone; _release must not look it up
            if crashed is not None and record.status is InputStatus.RUNNING:
                commands += self._failed_attempt(index, crashed, memory)
            elif blameless:
                self._release(index)
                commands.append(Requeue((index,)))
            else:
                commands += self._returned(index)
        return commands

    def _timed_out(self, worker: str, index: int) -> list[InputCommand]:
        """The input used up a try; the worker is gone, so the rest it held go back."""
        if self.inputs[index].worker != worker:
            return self._worker_gone(worker, crashed=None)
        return self._failed_attempt(index, Failure.TIMED_OUT) + self._worker_gone(
            worker, crashed=None
        )

    def _cancel(self, failed: bool) -> list[InputCommand]:
        commands: list[InputCommand] = [
            KillWorker(worker, "job canceled")
            for worker, holder in sorted(self.workers.items())
            if holder.leased and not holder.handed
        ]
        for index, record in enumerate(self.inputs):
            if not record.status.finished:
                self._finish(index, InputStatus.CANCELED)
        self.workers.clear()
        self.state = JobState.FAILED if failed else JobState.CANCELED
        return [*commands, FinishJob(self.state)]

    def _release(self, index: int) -> None:
        record = self.inputs[index]
        if record.worker is not None:
            self.workers[record.worker].leased.discard(index)
        self._move(record, InputStatus.QUEUED)
        record.worker = None

    def _finish(self, index: int, status: InputStatus) -> None:
        record = self.inputs[index]
        if record.status.finished or index in self.outcomes:
            raise InvariantError(f"input {index} would be recorded twice")
        self._release(index)
        self._move(record, status)
        self.outcomes[index] = status
        self._unfinished -= 1

    def _move(self, record: InputRecord, status: InputStatus) -> None:
        self.queued += (status is InputStatus.QUEUED) - (record.status is InputStatus.QUEUED)
        record.status = status

    def validate(self) -> None:
        """Raise InvariantError if an input is lost, held twice or recorded twice."""
        held: dict[int, str] = {}
        for worker, holder in self.workers.items():
            for index in holder.leased:
                if index in held:
                    raise InvariantError(f"input {index} is held by {held[index]} and {worker}")
                held[index] = worker
        unfinished = queued = 0
        for index, record in enumerate(self.inputs):
            status = record.status
            queued += status is InputStatus.QUEUED
            if status.finished:
                if self.outcomes.get(index) is not status:
                    raise InvariantError(f"input {index} is {status} but was recorded otherwise")
            elif index in self.outcomes:
                raise InvariantError(f"input {index} was recorded yet is {status} again")
            else:
                unfinished += 1
            leased = status in (InputStatus.LEASED, InputStatus.RUNNING)
            if leased != (held.get(index) is not None) or held.get(index) != record.worker:
                raise InvariantError(f"input {index} is {status} but held by {held.get(index)}")
            if record.attempts > self.retries + 1 or record.returns > self.max_returns + 1:
                raise InvariantError(f"input {index} ran past its tries: {record}")
            if len(record.ran_out) > record.attempts:
                raise InvariantError(f"input {index} ran out of memory more than it ran")
        if unfinished != self._unfinished:
            raise InvariantError(f"{unfinished} inputs unfinished, counted {self._unfinished}")
        if queued != self.queued:
            raise InvariantError(f"{queued} inputs queued, counted {self.queued}")
        if self.state.finished != (unfinished == 0 or self.state is JobState.CANCELED):
            raise InvariantError(f"job is {self.state} with {unfinished} inputs unfinished")
