"""Messages between a node and its workers: each round-trips through a frame, and a frame
that is not one of them is refused where it is read."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burla.core import wire, worker_wire
from burla.core.errors import InvalidRequestError
from burla.core.worker_wire import (
    EndJob,
    Hello,
    InputItem,
    Inputs,
    JobStart,
    LineItem,
    Lines,
    Open,
    Refusal,
    ResultItem,
    Results,
    read_from_worker,
    read_open,
    read_to_worker,
)

ids = st.text(max_size=12)
indices = st.integers(min_value=0, max_value=10**6)
sizes = st.integers(min_value=0, max_value=16)
input_items = st.lists(st.builds(InputItem, indices, sizes, st.none() | ids), max_size=5)
result_items = st.lists(st.builds(ResultItem, indices, ids, sizes), max_size=5)
to_worker = st.one_of(
    st.builds(JobStart, ids, st.none() | ids, st.none() | ids),
    input_items.map(lambda items: Inputs.of("job", items)),
    st.builds(EndJob, ids),
)
from_worker = st.one_of(
    st.builds(Hello, st.integers(0, 2**22)),
    st.builds(Refusal, st.text()),
    st.builds(worker_wire.JobErrorReport, ids, st.text()),
    st.builds(
        Lines, st.none() | ids, st.lists(st.builds(LineItem, indices, ids, st.text())).map(tuple)
    ),
    st.builds(
        Results.of,
        ids,
        result_items,
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
    ),
)


def payload_of(message: wire.Message) -> bytes:
    """Bytes as long as the sizes the message gives."""
    items = message.items if isinstance(message, Inputs | Results) else ()
    return b"x" * sum(item.size for item in items)


def through_a_frame(message: wire.Message, payload: bytes) -> tuple[Any, bytes]:
    [frame] = wire.decode_all(wire.encode(message.to_json(), payload))
    return frame


@given(to_worker)
def test_what_a_node_sends_round_trips(message: Any) -> None:
    payload = payload_of(message)
    assert read_to_worker(*through_a_frame(message, payload)) == message


@given(from_worker)
def test_what_a_worker_sends_round_trips(message: Any) -> None:
    payload = payload_of(message)
    assert read_from_worker(*through_a_frame(message, payload)) == message


def test_a_whole_number_of_busy_seconds_is_read_as_a_float() -> None:
    read = read_from_worker(["results", "job", [], [], [], 2], b"")
    assert read == Results("job", (), (), (), 2.0)
    assert type(read.busy_s) is float  # type: ignore[union-attr]


def test_open_is_read_alone() -> None:
    assert read_open(["open", "secret"]) == Open("secret")
    with pytest.raises(InvalidRequestError, match="no meaning"):
        read_open(["end_job", "job"])


@pytest.mark.parametrize(
    ("raw", "payload", "says"),
    [
        ({"op": "job", "job_id": "job"}, b"", "not a burla message"),
        (["no-such-tag"], b"", "not a burla message"),
        (["hello", 12], b"", "no meaning"),
        (["job", "job", None], b"", "has 2 fields, not 3"),
        (["end_job", 7], b"", "malformed"),
        (["inputs", "job", [[0, 1]]], b"x", "has 2 fields, not 4"),
        (["inputs", "job", [0], ["1"], []], b"x", "'1' is not of type int"),
        (["inputs", "job", [True], [1], []], b"x", "True is not of type int"),
        (["inputs", "job", [0], [1], [[0, 5]]], b"x", "is no Fetched"),
        (["inputs", "job", [0], [1], [[0]]], b"x", "is no Fetched"),
        (["inputs", "job", {"0": 1}, [1], []], b"x", "not a list"),
        (["inputs", "job", [0], [2], []], b"x", "add up to 2 bytes, but its payload has 1"),
        (["inputs", "job", [0, 1], [-1, 2], []], b"x", "add up to 1 bytes"),
        (["inputs", "job", [0, 1], [1], []], b"x", "a size for each input"),
        (["inputs", "job", [0], [1], [[3, "http://x"]]], b"x", "fetches only inputs it has"),
    ],
)
def test_a_frame_a_worker_cannot_carry_out_is_refused(raw: Any, payload: bytes, says: str) -> None:
    with pytest.raises(InvalidRequestError, match=says):
        read_to_worker(raw, payload)


@pytest.mark.parametrize(
    ("raw", "payload", "says"),
    [
        (["job", "job", None, None], b"", "no meaning"),
        (["hello", "1234"], b"", "malformed"),
        (["results", "job", [0], ["ok"], [1], "fast"], b"x", "not a number"),
        (["results", "job", [0], ["ok"], [1], True], b"x", "not a number"),
        (["results", "job", [0], ["ok"], [3], 0.1], b"x", "add up to 3 bytes"),
        (["results", "job", [0], ["ok"], [-1, 2], 0.1], b"x", "a kind and a size for each"),
        (["results", "job", [0, 1], ["ok"], [1, 0], 0.1], b"x", "a kind and a size for each"),
        (["results", "job", [0, 1], ["ok", "ok"], [2, -1], 0.1], b"x", "add up to 1 bytes"),
        (["results", "job", [[0, "ok", 1]], 0.1], b"x", "has 3 fields, not 5"),
        (["logs", None, [[0, "stdout"]]], b"", "is no LineItem"),
        (["logs", 4, []], b"", "malformed"),
    ],
)
def test_a_frame_a_node_cannot_take_is_refused(raw: Any, payload: bytes, says: str) -> None:
    with pytest.raises(InvalidRequestError, match=says):
        read_from_worker(raw, payload)


def test_two_records_of_a_frame_are_not_mixed_up() -> None:
    """Items are checked column by column: a bad field in a later item is still found."""
    lines = [[0, "stdout", "a"], [1, "stdout", "b"], [2, 3, "c"]]
    with pytest.raises(InvalidRequestError, match="is no LineItem"):
        read_from_worker(["logs", "job", lines], b"")
    with pytest.raises(InvalidRequestError, match="3 is not of type str"):
        read_from_worker(["results", "job", [0, 1, 2], ["ok", "ok", 3], [0, 0, 0], 0.0], b"")


@pytest.mark.parametrize("tag", [["job"], {"job": 1}, None, 3])
def test_a_tag_that_is_no_string_is_refused(tag: Any) -> None:
    with pytest.raises(InvalidRequestError, match="not a burla message"):
        read_to_worker([tag, "job"], b"")
