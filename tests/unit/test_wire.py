"""Frames: a JSON header and opaque bytes, as every burla process exchanges them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burla.core import report_wire, stream_wire, wire, worker_wire
from burla.core.errors import InvalidRequestError

headers = st.one_of(
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4),
    st.lists(st.integers() | st.text(max_size=5), max_size=4),
)


@given(st.lists(st.tuples(headers, st.binary(max_size=64)), max_size=6))
def test_frames_round_trip(frames):
    assert list(wire.decode_all(wire.encode_many(frames))) == frames


def test_a_body_cut_short_is_refused():
    body = wire.encode({"op": "x"}, b"payload")
    with pytest.raises(InvalidRequestError, match="ends inside a frame"):
        list(wire.decode_all(body[:-1]))
    with pytest.raises(InvalidRequestError, match="ends inside a frame prefix"):
        list(wire.decode_all(body[:3]))


def test_a_header_must_be_a_json_object_or_array():
    raw = b'"just a string"'
    body = wire._LENGTHS.pack(len(raw), 0) + raw
    with pytest.raises(InvalidRequestError, match="object or array"):
        list(wire.decode_all(body))
    with pytest.raises(InvalidRequestError, match="not JSON"):
        list(wire.decode_all(wire._LENGTHS.pack(3, 0) + b"{{{"))


def test_an_absurd_header_length_is_refused():
    with pytest.raises(InvalidRequestError, match="too large"):
        wire.lengths(wire._LENGTHS.pack(wire.MAX_HEADER + 1, 0))


ids = st.text(max_size=12)
indices = st.integers(min_value=0, max_value=10**6)
node_reports = st.one_of(
    st.builds(report_wire.ClaimReport, ids, ids, st.tuples(indices, indices), st.tuples(ids)),
    st.builds(
        report_wire.ResultsReport,
        ids,
        ids,
        st.tuples(indices, indices),
        st.tuples(ids, ids),
        st.just(()),
    ),
    st.builds(report_wire.LineReport, ids, indices, ids, st.text()),
    st.builds(report_wire.DeathReport, st.none() | ids, ids, st.none() | indices, st.booleans()),
    st.builds(report_wire.TimeoutReport, st.none() | ids, ids, indices),
    st.builds(worker_wire.JobErrorReport, ids, st.text()),
)
job_events = st.one_of(
    st.builds(stream_wire.JobResult, indices, ids),
    st.builds(stream_wire.JobLine, indices, ids, st.text()),
    st.builds(stream_wire.JobDone, ids, st.none() | st.text()),
)


@given(
    st.lists(node_reports, max_size=6),
    st.lists(st.tuples(st.binary(max_size=8), st.binary(max_size=8)), max_size=6),
)
def test_node_reports_round_trip_with_each_results_bytes(reports, blobs):
    sized = [
        (report_wire.ResultsReport(r.job_id, r.worker, r.indices, r.kinds, (len(a), len(b))), a + b)
        if isinstance(r, report_wire.ResultsReport)
        else (r, b"")
        for r, (a, b) in zip(reports, blobs + [(b"", b"")] * len(reports), strict=False)
    ]
    header = {"events": [report.to_json() for report, _ in sized]}
    payload = b"".join(b for _, b in sized)
    [(decoded, body)] = list(wire.decode_all(wire.encode(header, payload)))
    read = list(report_wire.read_reports(decoded["events"], body))
    assert read == sized
    for (report, data), (_, (a, b)) in zip(read, zip(reports, blobs, strict=False), strict=False):
        if isinstance(report, report_wire.ResultsReport):
            assert [cut for _, _, cut in report.outcomes(data)] == [a, b]


@pytest.mark.parametrize(
    ("indices", "kinds", "sizes"),
    [((1, 2), ("ok",), (0, 0)), ((1,), ("ok",), (0, 0)), ((1,), ("ok",), (-1,))],
)
def test_a_results_report_needs_a_kind_and_a_size_for_each_input(indices, kinds, sizes):
    raw = [["finished", "job", "w", list(indices), list(kinds), list(sizes)]]
    with pytest.raises(InvalidRequestError, match="a kind and a size"):
        list(report_wire.read_reports(raw, b""))


@given(ids, ids, st.lists(st.tuples(job_events, st.binary(max_size=8)), max_size=6))
def test_a_job_stream_round_trips(job_id, run, events):
    head = stream_wire.StreamHead(job_id, run, "running", len(events), None)
    read_head, read_events = stream_wire.read_stream(stream_wire.encode_stream(head, events))
    assert read_head == head
    assert list(read_events) == events


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("claimed", "is not a burla message"),
        (["no-such-tag", 1], "is not a burla message"),
        (["row", [0], ["ok"], [0]], "came where it has no meaning"),  # a client's event
        (["printed", "job", 0, "stdout"], "has 3 fields, not 4"),
        (["printed", "job", "0", "stdout", "text"], "'0' is not of type int"),
        (["printed", "job", True, "stdout", "text"], "True is not of type int"),
        (["claimed", "job", "w", [1, "2"], ["r", "s"], None], "'2' is not of type int"),
        (["claimed", "job", "w", [1], ["r"], "2"], "'2' is not a number"),
        (["died", "job", "w", None, 0, None, None], "0 is not of type bool"),
        (["died", "job", "w", 1, True, 0.5, "4"], "'4' is not a number"),
    ],
)
def test_a_malformed_report_is_refused_with_what_is_wrong(raw, says):
    with pytest.raises(InvalidRequestError, match=says):
        report_wire.decode_report(raw)


def test_results_in_a_row_share_a_frame_and_each_stays_an_event():
    events = [
        (stream_wire.JobResult(0, "ok"), b"a"),
        (stream_wire.JobResult(2, "raised"), b"bb"),
        (stream_wire.JobLine(1, "stdout", "hi"), b""),
        (stream_wire.JobResult(1, "ok"), b""),
        (stream_wire.JobDone("succeeded", None), b""),
    ]
    body = stream_wire.encode_events(events)
    assert len(list(wire.decode_all(body))) == 4  # a row of two results, a line, one, done
    assert list(stream_wire.read_events(wire.decode_all(body))) == events


@pytest.mark.parametrize(
    ("row", "payload"),
    [
        (["row", [0, 1], ["ok"], [1, 1]], b"ab"),
        (["row", [0], ["ok"], [-1]], b""),
        (["row", [0], ["ok"], [1]], b"ab"),  # bytes left over
    ],
)
def test_a_malformed_row_of_results_is_refused(row, payload):
    with pytest.raises(InvalidRequestError, match="a kind and a size for each input"):
        list(stream_wire.read_events(wire.decode_all(wire.encode(row, payload))))


def test_an_empty_or_headless_stream_is_refused():
    with pytest.raises(InvalidRequestError, match="starts with its head"):
        stream_wire.read_stream(b"")
    with pytest.raises(InvalidRequestError, match="came where it has no meaning"):
        stream_wire.read_stream(wire.encode(stream_wire.JobDone("succeeded", None).to_json()))
