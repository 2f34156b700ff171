"""What a client reads of its job: a head, then events (results, printed lines, the end).

A job's stream is frames of wire messages; the results that follow one another share one
frame (ResultRow), their bytes one after another in its payload.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple, cast

from burla.core.errors import InvalidRequestError
from burla.core.wire import (
    Message,
    decode_all,
    decode_message,
    encode,
    message,
    results_in_row,
)


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
