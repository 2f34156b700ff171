"""Frames: a JSON header and opaque bytes, the one format burla's processes exchange.

A frame is `<header length: 4 bytes><payload length: 4 bytes><JSON header><payload>`,
lengths big-endian. Payloads (pickled functions, inputs, results) pass through the
services untouched: only workers unpickle them.
"""

from __future__ import annotations

import functools
import itertools
import json
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from operator import itemgetter
from typing import Any, ClassVar, NamedTuple, TypeVar, cast

from burla.core.errors import InvalidRequestError

_LENGTHS = struct.Struct(">II")
PREFIX_SIZE = _LENGTHS.size
MAX_HEADER = 16 * 1024 * 1024
TRACEBACK_STREAM = "traceback"
"""A worker's log line on this stream is the text of the traceback an input raised: read
by people (the dashboard, `burla jobs show`), never printed by the client."""


def encode(header: dict[str, Any] | list[Any], payload: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return _LENGTHS.pack(len(head), len(payload)) + head + payload


def encode_many(frames: Iterable[tuple[Any, bytes]]) -> bytes:
    return b"".join(encode(header, payload) for header, payload in frames)


def lengths(prefix: bytes | memoryview) -> tuple[int, int]:
    """Header and payload lengths from a frame's first PREFIX_SIZE bytes."""
    head, body = _LENGTHS.unpack(prefix)
    if head > MAX_HEADER:
        raise InvalidRequestError(f"a frame header of {head} bytes is too large; is this burla?")
    return head, body


def decode_header(raw: bytes) -> Any:
    """A header: a JSON object, or a JSON array for compact events."""
    try:
        header = json.loads(raw)
    except ValueError as error:
        raise InvalidRequestError(f"a frame header is not JSON: {error}") from None
    if not isinstance(header, dict | list):
        raise InvalidRequestError("a frame header must be a JSON object or array")
    return header


def decode_all(data: bytes | memoryview) -> Iterator[tuple[Any, bytes]]:
    """Every frame in `data`, which must hold whole frames only."""
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        if len(view) - offset < PREFIX_SIZE:
            raise InvalidRequestError("the body ends inside a frame prefix")
        head, body = lengths(bytes(view[offset : offset + PREFIX_SIZE]))
        start = offset + PREFIX_SIZE
        end = start + head + body
        if end > len(view):
            raise InvalidRequestError("the body ends inside a frame")
        yield decode_header(bytes(view[start : start + head])), bytes(view[start + head : end])
        offset = end


# Messages ------------------------------------------------------------------------------
# Each message is a frozen dataclass that travels as a JSON array: its tag, then its
# fields in order. Arrays keep a 10,000-result job's frames small; the classes keep every
# reader from taking them apart by position. Decoding checks each field's type, so a
# peer's malformed message is refused where it enters, not deep in a service.

_Check = Callable[[Any], Any]


def _exactly(kind: type) -> _Check:
    def check(value: Any) -> Any:
        if type(value) is not kind:  # `type`, not isinstance: True is no int here
            raise TypeError(f"{value!r} is not of type {kind.__name__}")
        return value

    return check


def _optional(check: _Check) -> _Check:
    return lambda value: None if value is None else check(value)


def _number(value: Any) -> float:
    if type(value) not in (float, int):  # JSON writes 2.0 as 2.0, but peers may send 2
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _tuple_of(kind: type) -> _Check:
    """Items all exactly of `kind`, checked at C speed: a report may hold thousands."""

    def convert(value: Any) -> tuple[Any, ...]:
        if type(value) not in (list, tuple):
            raise TypeError(f"{value!r} is not a list")
        if kinds := set(map(type, value)) - {kind}:
            wrong = next(item for item in value if type(item) in kinds)
            raise TypeError(f"{wrong!r} is not of type {kind.__name__}")
        return tuple(value)

    return convert


_CHECKS: dict[str, _Check] = {
    "str": _exactly(str),
    "int": _exactly(int),
    "bool": _exactly(bool),
    "float": _number,
    "str | None": _optional(_exactly(str)),
    "int | None": _optional(_exactly(int)),
    "float | None": _optional(_number),
    "tuple[int, ...]": _tuple_of(int),
    "tuple[str, ...]": _tuple_of(str),
    "dict[str, Any]": _exactly(dict),  # a model's JSON, which its reader validates
    "tuple[dict[str, Any], ...]": _tuple_of(dict),
    "list[Any]": _exactly(list),  # messages within, which their reader decodes
}
"""How each field type a message may have is read from JSON."""

_KINDS: dict[str, tuple[type[Message], tuple[_Check, ...]]] = {}

_RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "str": (str,),
    "bool": (bool,),
    "int | None": (int, type(None)),
    "str | None": (str, type(None)),
}
"""The field types a record may have, and the JSON types each is read from."""

R = TypeVar("R", bound=tuple[Any, ...])


def record(cls: type[R]) -> type[R]:
    """Let messages have a field `tuple[<cls>, ...]` of items: NamedTuples, which JSON
    writes as arrays of their fields at no cost. A frame may hold hundreds, so they are
    checked column by column, with no call per field."""
    # NamedTuple keeps a postponed annotation as a ForwardRef to its text.
    written = (getattr(kind, "__forward_arg__", kind) for kind in cls.__annotations__.values())
    kinds = tuple(frozenset(_RECORD_FIELDS[str(kind)]) for kind in written)
    make = functools.partial(tuple.__new__, cls)  # what cls._make does, without its call
    width = len(kinds)

    def convert(value: Any) -> tuple[R, ...]:
        if type(value) not in (list, tuple):
            raise TypeError(f"{str(value)[:80]} is not a list")
        # Each check is one pass at C speed; the item at fault is looked for only then.
        if not set(map(type, value)) <= {list} or not set(map(len, value)) <= {width}:
            wrong = next(i for i in value if type(i) is not list or len(i) != width)
            raise TypeError(f"{str(wrong)[:80]} is no {cls.__name__}")
        for column, allowed in enumerate(kinds):
            if not set(map(type, map(itemgetter(column), value))) <= allowed:
                wrong = next(i for i in value if type(i[column]) not in allowed)
                raise TypeError(f"{str(wrong)[:80]} is no {cls.__name__}")
        return tuple(map(make, value))

    _CHECKS[f"tuple[{cls.__name__}, ...]"] = convert
    return cls


class Message:
    """A message between burla's processes."""

    __slots__ = ()
    tag: ClassVar[str]

    def to_json(self) -> list[Any]:
        names: tuple[str, ...] = self.__slots__
        return [self.tag, *(getattr(self, name) for name in names)]


M = TypeVar("M", bound=Message)


def message(tag: str) -> Callable[[type[M]], type[M]]:
    """Register a message class under the tag it travels with."""

    def register(cls: type[M]) -> type[M]:
        if tag in _KINDS:
            raise TypeError(f"two messages are tagged {tag!r}")
        cls.tag = tag
        _KINDS[tag] = (cls, tuple(_CHECKS[str(f.type)] for f in fields(cls)))  # type: ignore[arg-type]
        return cls

    return register


def decode_message(raw: Any, expected: tuple[type[Message], ...]) -> Message:
    """The message `raw` (a decoded JSON array) holds, which must be one of `expected`."""
    if type(raw) is not list or not raw or type(raw[0]) is not str or raw[0] not in _KINDS:
        raise InvalidRequestError(f"{str(raw)[:80]} is not a burla message")
    cls, checks = _KINDS[raw[0]]
    if cls not in expected:
        raise InvalidRequestError(f"a {raw[0]!r} message came where it has no meaning")
    if len(raw) != len(checks) + 1:
        raise InvalidRequestError(
            f"a {raw[0]!r} message has {len(raw) - 1} fields, not {len(checks)}"
        )
    try:
        values = [check(value) for check, value in zip(checks, raw[1:], strict=True)]
    except TypeError as error:
        raise InvalidRequestError(f"a {raw[0]!r} message is malformed: {error}") from None
    return cls(*values)


# What a node reports to main_service, in the order it saw it ---------------------------
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
        return _cut(self.indices, self.kinds, self.sizes, payload)


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


@message("job_error")
@dataclass(frozen=True, slots=True)
class JobErrorReport(Message):
    """The job cannot run on this node (its function did not load, its packages could
    not be set up)."""

    job_id: str
    message: str


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
            if not _sized(report.indices, report.kinds, report.sizes):
                raise InvalidRequestError(
                    "a results report has a kind and a size (not negative) for each input"
                )
            size = sum(report.sizes)
            yield report, payload[offset : offset + size]
            offset += size
        else:
            yield report, b""


# What a client reads of its job: a head, then events -----------------------------------
@message("head")
@dataclass(frozen=True, slots=True)
class StreamHead(Message):
    """Where the job is: `run` names this stream (a main_service that takes the job over
    after a restart starts another); `next`, the position to read from next."""

    job_id: str
    run: str
    state: str
    next: int
    error: str | None


class JobResult(NamedTuple):
    """Input `index`'s result ("ok") or failure (any other kind); its bytes follow.
    Results in a row travel in one frame (ResultRow). A tuple: a job's stream holds one
    per input, made by the thousand (see succeeded)."""

    index: int  # type: ignore[assignment]  # hides tuple.index, which results never use
    kind: str


_ok = functools.partial(tuple.__new__, JobResult)


def succeeded(indices: Iterable[int]) -> Iterator[JobResult]:
    """JobResult(index, "ok") of each of `indices`, made at C speed."""
    return map(_ok, zip(indices, itertools.repeat("ok")))


@message("row")
@dataclass(frozen=True, slots=True)
class ResultRow(Message):
    """Results that follow one another in a job's stream, in one frame: the result of
    input `indices[n]` is of `kinds[n]`, and its `sizes[n]` bytes come in turn. Each is
    still one event of the stream (positions count results, not frames); a frame per
    result cost its reader and its writer several microseconds each."""

    indices: tuple[int, ...]
    kinds: tuple[str, ...]
    sizes: tuple[int, ...]


@message("log")
@dataclass(frozen=True, slots=True)
class JobLine(Message):
    """A line the function printed while it ran input `index`."""

    index: int
    stream: str
    text: str


@message("done")
@dataclass(frozen=True, slots=True)
class JobDone(Message):
    """The job ended in `state`; `error` says why it failed, when the cluster knows."""

    state: str
    error: str | None


@message("budget")
@dataclass(frozen=True, slots=True)
class BudgetStop(Message):
    """The job's nodes came to cost its max_cost (USD), so the cluster stopped it: what
    they cost, their node-seconds, and how many inputs had finished. Its JobDone follows."""

    max_cost: float
    cost: float
    node_seconds: float
    finished: int


JobEvent = JobResult | JobLine | BudgetStop | JobDone


def encode_events(events: Iterable[tuple[JobEvent, bytes]]) -> bytes:
    """Events as frames: the results in a row in one frame (ResultRow), each other event
    in a frame of its own. Column by column: an answer may carry thousands of results."""
    events = list(events)
    others = [n for n, (event, _) in enumerate(events) if not isinstance(event, JobResult)]
    frames: list[bytes] = []
    start = 0
    for end in [*others, len(events)]:
        if end > start:
            frames.append(_row_frame(events[start:end]))
        if end < len(events):
            event, data = events[end]
            assert not isinstance(event, JobResult)
            frames.append(encode(event.to_json(), data))
        start = end + 1
    return b"".join(frames)


def _row_frame(row: list[tuple[JobEvent, bytes]]) -> bytes:
    results = list(map(_first, row))
    payloads = list(map(_second, row))
    indices, kinds = list(map(_first, results)), list(map(_second, results))
    sizes = list(map(len, payloads))
    return encode(["row", indices, kinds, sizes], b"".join(payloads))


_first, _second = itemgetter(0), itemgetter(1)


def encode_stream(head: StreamHead, events: Iterable[tuple[JobEvent, bytes]]) -> bytes:
    return encode(head.to_json()) + encode_events(events)


def read_stream(body: bytes) -> tuple[StreamHead, Iterator[tuple[JobEvent, bytes]]]:
    """A job stream's head, and its events as they are read."""
    frames = decode_all(body)
    first = next(frames, None)
    if first is None:
        raise InvalidRequestError("a job stream starts with its head; this one is empty")
    head = cast(StreamHead, decode_message(first[0], (StreamHead,)))
    return head, read_events(frames)


NEXT_PAGE = "Burla-Next-Page"
"""The header of an answer of stored results that names the page to ask after next,
while more may follow."""


def read_events(frames: Iterable[tuple[Any, bytes]]) -> Iterator[tuple[JobEvent, bytes]]:
    for raw, data in frames:
        event = decode_message(raw, (ResultRow, JobLine, BudgetStop, JobDone))
        if type(event) is not ResultRow:
            yield cast(JobEvent, event), data
            continue
        for index, kind, cut in results_in_row(event.indices, event.kinds, event.sizes, data):
            yield JobResult(index, kind), cut


def results_in_row(
    indices: Sequence[int], kinds: Sequence[str], sizes: Sequence[int], payload: bytes
) -> Iterator[tuple[int, str, bytes]]:
    """(index, kind, bytes) of results in a row (a job stream's frame, a page in the
    Store); InvalidRequestError unless each has a kind and a size and the bytes add up."""
    if not _sized(indices, kinds, sizes) or sum(sizes) != len(payload):
        raise InvalidRequestError(
            "a row of results has a kind and a size for each input, and bytes for each"
        )
    return _cut(indices, kinds, sizes, payload)


def _sized(indices: Sequence[int], kinds: Sequence[str], sizes: Sequence[int]) -> bool:
    """Whether results in a row give a kind and a size (not negative) for each input."""
    return len(indices) == len(kinds) == len(sizes) and min(sizes, default=0) >= 0


def _cut(
    indices: Sequence[int], kinds: Sequence[str], sizes: Sequence[int], payload: bytes
) -> Iterator[tuple[int, str, bytes]]:
    """(index, kind, bytes) of results in a row, their bytes one after another in `payload`."""
    offset = 0
    for index, kind, size in zip(indices, kinds, sizes, strict=True):
        yield index, kind, payload[offset : offset + size]
        offset += size
