"""Frames: a JSON header and opaque bytes, as every burla process exchanges them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burla.core import wire
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
