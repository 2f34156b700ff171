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
