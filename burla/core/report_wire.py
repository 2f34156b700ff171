"""What a node reports to main_service, in the order it saw it: frames of wire messages.

A node's reports go as one frame: a JSON list of messages, and the bytes of the results
they carry one after another in its payload (read_reports cuts them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from burla.core.errors import InvalidRequestError
from burla.core.wire import Message, cut_row, decode_message, message, sized
from burla.core.worker_wire import JobErrorReport


@message("runs")
@dataclass(frozen=True, slots=True)
class RunsReport(Message):
    """The node claimed these runs of inputs (services.input_runs): run `receipts[n]`
    holds inputs `firsts[n]` to `firsts[n] + counts[n] - 1`."""

    job_id: str
    receipts: tuple[str, ...]
    firsts: tuple[int, ...]
    counts: tuple[int, ...]


@message("claimed")
@dataclass(frozen=True, slots=True)
class ClaimReport(Message):
    """The node handed these inputs, claimed under these queue receipts, to a worker."""

    job_id: str
    worker: str
    indices: tuple[int, ...]
    receipts: tuple[str, ...]
    memory_gb: float | None = None
    """The worker's memory, when its node gave it more than the job's func_ram."""


@message("finished")
@dataclass(frozen=True, slots=True)
class ResultsReport(Message):
    """Outcomes of inputs one worker ran, in the order it sent them: input `indices[n]`
    ended as `kinds[n]` and its `sizes[n]` bytes follow in the report's payload, in turn.
    A kind is "ok" (a pickled value), "raised" (a pickled exception) or "raised_text"
    (JSON of an exception that does not pickle). One event for a worker's frame of
    results, not one per input: a node reports thousands of results a second."""

    job_id: str
    worker: str
    indices: tuple[int, ...]
    kinds: tuple[str, ...]
    sizes: tuple[int, ...]

    def outcomes(self, payload: bytes) -> Iterator[tuple[int, str, bytes]]:
        """(index, kind, bytes) of each input, cut from the report's `payload` for this
        event (read_reports gives each event its own)."""
        return cut_row(self.indices, self.kinds, self.sizes, payload)


@message("printed")
@dataclass(frozen=True, slots=True)
class LineReport(Message):
    """A line the function printed while it ran input `index` (or its traceback)."""

    job_id: str
    index: int
    stream: str
    text: str


@message("died")
@dataclass(frozen=True, slots=True)
class DeathReport(Message):
    """A worker's process ended while it held inputs: `running` is the input it was
    running, when known; `out_of_memory`, whether it went over its memory limit, which
    was `memory_gb` GB on a node of `node_gb` GB."""

    job_id: str | None
    worker: str
    running: int | None
    out_of_memory: bool
    memory_gb: float | None = None
    node_gb: float | None = None


@message("timed_out")
@dataclass(frozen=True, slots=True)
class TimeoutReport(Message):
    """The node stopped a worker whose input `index` ran past the job's timeout."""

    job_id: str | None
    worker: str
    index: int


@message("drained")
@dataclass(frozen=True, slots=True)
class DrainedReport(Message):
    """The node found the job's queue empty and holds none of its inputs: it has nothing
    to do for the job unless inputs come back, and may be let go of."""

    job_id: str


NodeReport = (
    RunsReport
    | ClaimReport
    | ResultsReport
    | LineReport
    | DeathReport
    | TimeoutReport
    | JobErrorReport
    | DrainedReport
)
_NODE_REPORTS = (
    RunsReport,
    ClaimReport,
    ResultsReport,
    LineReport,
    DeathReport,
    TimeoutReport,
    JobErrorReport,
    DrainedReport,
)


def decode_report(raw: Any) -> NodeReport:
    return cast(NodeReport, decode_message(raw, _NODE_REPORTS))


def read_reports(raw: Any, payload: bytes) -> Iterator[tuple[NodeReport, bytes]]:
    """A node's reports (decoded JSON) with each result's bytes cut from `payload`."""
    if type(raw) is not list:
        raise InvalidRequestError("a node's reports come as a list")
    offset = 0
    for item in raw:
        report = decode_report(item)
        if type(report) is ResultsReport:
            if not sized(report.indices, report.kinds, report.sizes):
                raise InvalidRequestError(
                    "a results report has a kind and a size (not negative) for each input"
                )
            size = sum(report.sizes)
            yield report, payload[offset : offset + size]
            offset += size
        else:
            yield report, b""
