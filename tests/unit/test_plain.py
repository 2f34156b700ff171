"""Plain values: pickled by the standard library to the very bytes cloudpickle writes."""

from __future__ import annotations

import pickle

import cloudpickle
from hypothesis import given
from hypothesis import strategies as st

from burla.core.plain import dumps_plain

plain = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()


@given(st.one_of(plain, st.tuples(plain, plain), st.lists(plain, max_size=3).map(tuple)))
def test_a_plain_value_pickles_as_cloudpickle_would(value):
    data = dumps_plain(value)
    assert data == cloudpickle.dumps(value)
    assert repr(pickle.loads(data)) == repr(value)  # repr: NaN is not equal to itself


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def test_anything_else_is_left_to_cloudpickle():
    assert dumps_plain([1, 2]) is None  # a list may hold anything: not looked into
    assert dumps_plain((1, Point(2))) is None
    assert dumps_plain(Point(1)) is None
    assert dumps_plain(lambda: 1) is None
    assert dumps_plain(True.__class__) is None  # a class, even a builtin one


@given(st.lists(st.one_of(plain, st.tuples(plain, plain)), max_size=8), st.booleans())
def test_a_jobs_inputs_pickle_as_each_would_alone(inputs, unpack_tuples):
    """remote_parallel_map pickles numbers, True, False and None on a short way of its
    own: to the same bytes as any input's."""
    from burla.client.map import _pickled
    from burla.client.serialize import dumps_input

    expected = [dumps_input(n, value, unpack_tuples) for n, value in enumerate(inputs)]
    assert _pickled(b"function", inputs, unpack_tuples) == expected
