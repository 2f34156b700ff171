"""Messages between main_service and a node: each round-trips through a frame, and a frame
that is not one of them is refused where it is read."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burla.core import wire
from burla.core.errors import InvalidRequestError
from burla.core.link_wire import (
    Assign,
    CheckHealth,
    KillWorker,
    NodeHealth,
    Reply,
    Report,
    Reset,
    Standby,
    read_from_node,
    read_request,
)
from burla.core.worker_wire import Refusal

ids = st.text(max_size=12)
request_ids = st.integers(0, 2**31)
objects = st.dictionaries(ids, st.integers() | ids, max_size=3)
requests = st.one_of(
    st.builds(
        Assign,
        objects,
        st.integers(1, 96),
        st.none() | ids,
        st.lists(ids, max_size=3).map(tuple),
        st.none() | ids,
        st.integers(1, 256),
        st.lists(st.integers(0, 10**6), max_size=3).map(tuple),
        st.lists(st.integers(0, 10**6), max_size=3).map(tuple),
        request_ids,
    ),
    st.builds(Standby, st.lists(objects, max_size=3).map(tuple), request_ids),
    st.builds(Reset, st.none() | ids, st.booleans(), request_ids),
    st.builds(KillWorker, ids, ids, request_ids),
    st.builds(CheckHealth, request_ids),
)
from_node = st.one_of(
    st.builds(Reply, st.none() | request_ids, st.none() | st.text()),
    st.builds(NodeHealth, request_ids, ids, st.none() | ids, st.integers(0, 96)),
    st.builds(Report, ids, st.lists(st.lists(st.integers() | ids, max_size=4), max_size=4)),
    st.builds(Refusal, st.text()),
)


def through_a_frame(message: wire.Message) -> Any:
    [(header, _)] = wire.decode_all(wire.encode(message.to_json()))
    return header


@given(requests)
def test_requests_round_trip(request: Any) -> None:
    assert read_request(through_a_frame(request)) == request


@given(from_node)
def test_what_a_node_answers_round_trips(message: Any) -> None:
    assert read_from_node(through_a_frame(message)) == message


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"op": "health", "id": 1}, "not a burla message"),
        (["reply", 1, None], "no meaning"),
        (["kill_worker", 3, "job-1", 1], "malformed"),
        (["reset", None, "yes", 1], "malformed"),
        (["assign", [], 1, None, [], None, 1, [], [], 0.0, 1], "malformed"),
        (["standby", ["not a spec"], 1], "malformed"),
        (["health"], "has 0 fields, not 1"),
    ],
)
def test_a_request_a_node_cannot_read_is_refused(raw: Any, says: str) -> None:
    with pytest.raises(InvalidRequestError, match=says):
        read_request(raw)


def test_what_no_node_sends_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="no meaning"):
        read_from_node(["health", 1])
    with pytest.raises(InvalidRequestError, match="malformed"):
        read_from_node(["report", "node-1", {"events": []}])
