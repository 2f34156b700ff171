"""A job stopped at its max_cost, as its client reads it: BudgetExceededError saying the
cap, the cost and how many inputs finished; with return_exceptions, the finished results
in their places and the error in the place of each input that did not finish."""

from __future__ import annotations

from typing import Any

import cloudpickle
import httpx
import pytest

from burla.client.results import follow, stored_results
from burla.core import stream_wire
from burla.core.errors import BudgetExceededError
from tests.unit.test_return_exceptions import RecordedConnection

STOP = stream_wire.BudgetStop(max_cost=2.5, cost=2.5012, node_seconds=901.0, finished=3)


def stopped_stream(finished: list[int]) -> bytes:
    """Results of `finished` (their value: the index times ten), then the stop, then the end."""
    events: list[tuple[stream_wire.JobEvent, bytes]] = [
        (stream_wire.JobResult(index, "ok"), cloudpickle.dumps(index * 10)) for index in finished
    ]
    events += [(STOP, b""), (stream_wire.JobDone("canceled", None), b"")]
    head = stream_wire.StreamHead("job-1", "run-1", "canceled", len(events), None)
    return stream_wire.encode_stream(head, events)


def followed(body: bytes, **options: Any) -> list[Any]:
    return list(follow(RecordedConnection(), "job-1", 6, spinner=False, first=body, **options))


def test_the_client_raises_budget_exceeded_saying_the_cap_the_cost_and_what_finished():
    with pytest.raises(BudgetExceededError) as stopped:
        followed(stopped_stream([0, 2, 3]), ordered=True)
    error = stopped.value
    assert (error.job_id, error.max_cost, error.cost, error.finished) == ("job-1", 2.5, 2.5012, 3)
    assert error.n_inputs == 6
    assert error.burla_input_index is None
    message = str(error)
    assert "its nodes came to cost $2.5012, reaching its max_cost=$2.5" in message
    assert "after 3 of 6 inputs finished" in message
    assert "`burla jobs result job-1 --return-exceptions`" in message


@pytest.mark.parametrize("ordered", [True, False])
def test_with_return_exceptions_every_input_has_its_place(ordered: bool):
    results = followed(stopped_stream([0, 2, 3]), ordered=ordered, return_exceptions=True)
    assert len(results) == 6
    values = [r for r in results if not isinstance(r, BaseException)]
    assert sorted(values) == [0, 20, 30]
    stopped = [r for r in results if isinstance(r, BudgetExceededError)]
    assert sorted(r.burla_input_index for r in stopped) == [1, 4, 5]
    assert str(stopped[0]).startswith(f"input {stopped[0].burla_input_index} did not finish")
    if ordered:
        assert results[0] == 0
        assert results[2:4] == [20, 30]
        assert [results[n].burla_input_index for n in (1, 4, 5)] == [1, 4, 5]


class StoredConnection:
    """A finished job's stored results, one page."""

    def __init__(self, finished: list[int]) -> None:
        self.page = stream_wire.encode_events(
            [(stream_wire.JobResult(index, "ok"), cloudpickle.dumps(index)) for index in finished]
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return httpx.Response(200, content=self.page)


def test_a_stopped_jobs_stored_results_read_back_the_same_way():
    job = {
        "state": "canceled",
        "spec": {"n_inputs": 4},
        "budget_stop": {"max_cost": 1.0, "cost": 1.0, "node_seconds": 10.0, "finished": 2},
    }
    connection: Any = StoredConnection([0, 3])
    with pytest.raises(BudgetExceededError, match="after 2 of 4 inputs finished"):
        stored_results(connection, "job-1", job)
    results = stored_results(connection, "job-1", job, return_exceptions=True)
    assert results[0] == 0
    assert results[3] == 3
    assert [r.burla_input_index for r in results[1:3]] == [1, 2]
