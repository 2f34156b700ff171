"""return_exceptions on the client: a failed input's exception stands in its place, the
job is not canceled, and errors that are no input's are still raised."""

from __future__ import annotations

import json
from typing import Any

import cloudpickle
import pytest

from burla.client.results import follow
from burla.core import stream_wire
from burla.core.errors import (
    FunctionLoadError,
    InputTimeoutError,
    JobError,
    NodeLostError,
    OutOfMemoryError,
    RemoteError,
    WorkerCrashedError,
)


class RecordedConnection:
    """A connection whose job stream was all told in the first answer: it records cancels
    and is never asked for more."""

    def __init__(self) -> None:
        self.canceled: list[tuple[str, bool]] = []

    def cancel(self, job_id: str, *, failed: bool = False) -> None:
        self.canceled.append((job_id, failed))

    def call_reviving(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the whole stream was in the first answer")


def stream(results: list[tuple[int, str, bytes]], state: str, error: str | None = None) -> bytes:
    head = stream_wire.StreamHead("job-1", "run-1", state, len(results) + 1, error)
    events: list[tuple[stream_wire.JobEvent, bytes]] = [
        (stream_wire.JobResult(index, kind), data) for index, kind, data in results
    ]
    events.append((stream_wire.JobDone(state, error), b""))
    return stream_wire.encode_stream(head, events)


def ok(index: int, value: Any) -> tuple[int, str, bytes]:
    return index, "ok", cloudpickle.dumps(value)


def failed(index: int, kind: str, **details: str) -> tuple[int, str, bytes]:
    return index, kind, json.dumps(details).encode()


MIXED = [
    ok(0, "zero"),
    (1, "raised", cloudpickle.dumps(KeyError("no 1"))),
    failed(2, "worker_died", message="input 2 failed: its worker died"),
    failed(3, "out_of_memory", message="input 3 failed: over func_ram"),
    failed(4, "timed_out", message="input 4 failed: past the timeout"),
    failed(5, "lost", message="input 5 failed: its node was lost"),
    failed(6, "raised_text", type="Holder", message="holding", traceback="Traceback ..."),
    ok(7, 7),
]


def collected(connection: RecordedConnection, body: bytes, **options: Any) -> list[Any]:
    total = options.pop("total", 8)
    options.setdefault("ordered", True)
    return list(follow(connection, "job-1", total, spinner=False, first=body, **options))


def test_each_failure_stands_in_its_place_as_its_own_type_and_nothing_is_canceled():
    connection = RecordedConnection()
    results = collected(connection, stream(MIXED, "failed"), return_exceptions=True)
    assert results[0] == "zero"
    assert results[7] == 7
    kinds = [type(result) for result in results[1:7]]
    assert kinds == [
        KeyError,
        WorkerCrashedError,
        OutOfMemoryError,
        InputTimeoutError,
        NodeLostError,
        RemoteError,
    ]
    assert [result.burla_input_index for result in results[1:7]] == [1, 2, 3, 4, 5, 6]
    assert "its worker died" in str(results[2])
    assert results[6].remote_type == "Holder"
    assert connection.canceled == []


def test_in_completion_order_failures_come_as_they_came():
    connection = RecordedConnection()
    shuffled = [MIXED[6], MIXED[0], MIXED[1]]
    body = stream(shuffled, "failed")
    results = collected(connection, body, total=3, ordered=False, return_exceptions=True)
    assert [type(result) for result in results] == [RemoteError, str, KeyError]
    assert connection.canceled == []


def test_without_it_the_first_failure_is_raised_and_the_job_canceled_as_failed():
    connection = RecordedConnection()
    with pytest.raises(KeyError) as caught:
        collected(connection, stream(MIXED, "failed"))
    assert caught.value.burla_input_index == 1
    assert connection.canceled == [("job-1", True)]


def test_a_function_that_does_not_load_is_still_raised():
    connection = RecordedConnection()
    body = stream([], "failed", error="ModuleNotFoundError: No module named 'mine'")
    with pytest.raises(FunctionLoadError, match="mine"):
        collected(connection, body, total=2, return_exceptions=True)


def test_a_canceled_job_is_still_raised():
    connection = RecordedConnection()
    with pytest.raises(JobError, match="canceled"):
        collected(connection, stream([ok(0, 0)], "canceled"), total=3, return_exceptions=True)
