"""Messages between a node and its workers (container_service), defined once.

The node opens each worker's connection with the worker's own secret; the worker answers
hello. Then the node sends a job (its pickled function as the payload), frames of inputs
(their pickled arguments, concatenated) and the job's end; the worker sends back printed
lines, results (their pickled values, concatenated) and, if the function does not load,
a JobErrorReport. Each side decodes what it reads here, so a malformed frame is refused
where it enters (InvalidRequestError), never deep in a service.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from burla.core import wire
from burla.core.errors import InvalidRequestError
from burla.core.wire import Message, message, record


@message("job_error")
@dataclass(frozen=True, slots=True)
class JobErrorReport(Message):
    """The job cannot run on this node (its function did not load, its packages could
    not be set up)."""

    job_id: str
    message: str


@message("open")
@dataclass(frozen=True, slots=True)
class Open(Message):
    """The first frame on a connection to a worker or a node: the secret that lets the
    caller use it."""

    secret: str


@message("job")
@dataclass(frozen=True, slots=True)
class JobStart(Message):
    """Run job `job_id`'s function (the payload) from now on. `packages_path` is a folder
    of the job's own packages, put first on sys.path; `token`, the job's token, for calls
    its code makes to the cluster."""

    job_id: str
    packages_path: str | None
    token: str | None


class InputItem(NamedTuple):
    """One input of an Inputs frame: `size` bytes of its pickled arguments in the
    payload, or, for a big input, none and the signed `url` to fetch them from."""

    index: int  # type: ignore[assignment]  # hides tuple.index, which items never use
    size: int
    url: str | None


@record
class Fetched(NamedTuple):
    """A big input of an Inputs frame: its arguments are at the signed `url`."""

    index: int  # type: ignore[assignment]  # hides tuple.index, which items never use
    url: str


@message("inputs")
@dataclass(frozen=True, slots=True)
class Inputs(Message):
    """Run inputs `indices` in order: `sizes[n]` bytes of each one's pickled arguments
    follow in turn in the payload, none for one among `fetched`, which the worker
    fetches itself. Columns, not an item per input: a frame may hold hundreds."""

    job_id: str
    indices: tuple[int, ...]
    sizes: tuple[int, ...]
    fetched: tuple[Fetched, ...]

    @classmethod
    def of(cls, job_id: str, items: Iterable[InputItem]) -> Inputs:
        """The frame of these inputs."""
        rows = tuple(items)
        indices = tuple(item.index for item in rows)
        fetched = tuple(Fetched(item.index, item.url) for item in rows if item.url is not None)
        return cls(job_id, indices, tuple(item.size for item in rows), fetched)

    @property
    def items(self) -> tuple[InputItem, ...]:
        """The inputs, one by one."""
        urls = dict(self.fetched)
        rows = zip(self.indices, self.sizes, map(urls.get, self.indices), strict=True)
        return tuple(map(InputItem._make, rows))


@message("end_job")
@dataclass(frozen=True, slots=True)
class EndJob(Message):
    """The job is over here: send what is left and forget its function."""

    job_id: str


@message("hello")
@dataclass(frozen=True, slots=True)
class Hello(Message):
    """The worker's answer to Open: it serves this node from now on."""

    pid: int


@message("refused")
@dataclass(frozen=True, slots=True)
class Refusal(Message):
    """The last frame could not be read or carried out, and why."""

    message: str


@record
class LineItem(NamedTuple):
    """A line the function printed while it ran input `index`."""

    index: int  # type: ignore[assignment]  # hides tuple.index, which items never use
    stream: str
    text: str


@message("logs")
@dataclass(frozen=True, slots=True)
class Lines(Message):
    """Printed lines, in order. `job_id` is None for lines printed between jobs."""

    job_id: str | None
    items: tuple[LineItem, ...]


class ResultItem(NamedTuple):
    """An input's outcome: `size` bytes of the payload. `kind` is "ok" (a pickled value),
    "raised" (a pickled exception with its traceback) or "raised_text" (JSON of type,
    message and traceback, for an exception that does not pickle)."""

    index: int  # type: ignore[assignment]  # hides tuple.index, which items never use
    kind: str
    size: int


@message("results")
@dataclass(frozen=True, slots=True)
class Results(Message):
    """Finished inputs: input `indices[n]` ended as `kinds[n]` (see ResultItem) and its
    `sizes[n]` bytes come in turn in the payload; `busy_s` is how long they ran, from
    which the node sizes the next frames. Columns, not an item per input: a worker of
    short inputs sends thousands a second, and its node passes the columns on as they
    are (report_wire.ResultsReport)."""

    job_id: str
    indices: tuple[int, ...]
    kinds: tuple[str, ...]
    sizes: tuple[int, ...]
    busy_s: float

    @classmethod
    def of(cls, job_id: str, items: Iterable[ResultItem], busy_s: float) -> Results:
        """The frame of these outcomes."""
        rows = tuple(items)
        indices = tuple(item.index for item in rows)
        kinds = tuple(item.kind for item in rows)
        return cls(job_id, indices, kinds, tuple(item.size for item in rows), busy_s)

    @property
    def items(self) -> tuple[ResultItem, ...]:
        """The outcomes, one by one."""
        return tuple(map(ResultItem._make, zip(self.indices, self.kinds, self.sizes, strict=True)))


ToWorker = JobStart | Inputs | EndJob
FromWorker = Hello | Refusal | JobErrorReport | Lines | Results


def read_open(raw: Any) -> Open:
    return cast(Open, wire.decode_message(raw, (Open,)))


def read_to_worker(raw: Any, payload: bytes) -> ToWorker:
    """A frame from the node, checked against its payload."""
    message = cast(ToWorker, wire.decode_message(raw, (JobStart, Inputs, EndJob)))
    if type(message) is Inputs:
        if len(message.indices) != len(message.sizes):
            raise InvalidRequestError("an inputs frame gives a size for each input")
        if not {item.index for item in message.fetched} <= set(message.indices):
            raise InvalidRequestError("an inputs frame fetches only inputs it has")
        _check_sizes(message.sizes, payload)
    return message


def read_from_worker(raw: Any, payload: bytes) -> FromWorker:
    """A frame from a worker, checked against its payload."""
    message = cast(
        FromWorker, wire.decode_message(raw, (Hello, Refusal, JobErrorReport, Lines, Results))
    )
    if type(message) is Results:
        if not len(message.indices) == len(message.kinds) == len(message.sizes):
            raise InvalidRequestError("a results frame gives a kind and a size for each input")
        _check_sizes(message.sizes, payload)
    return message


def _check_sizes(sizes: Sequence[int], payload: bytes) -> None:
    if min(sizes, default=0) < 0 or sum(sizes) != len(payload):
        raise InvalidRequestError(
            f"a frame's sizes add up to {sum(sizes)} bytes, but its payload has {len(payload)}"
        )
