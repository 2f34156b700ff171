"""What a worker sends back when the function does what would not reach its caller as
it is: a traceback too deep to pickle, sys.exit, a return value that does not pickle."""

from __future__ import annotations

import threading
import traceback

import cloudpickle
import pytest

from burla.core.errors import FunctionExitError, SerializationError
from burla.services.container_service.outcome import KEPT_FRAMES, pack_exception, pack_value


def recurse(depth: int) -> int:
    return recurse(depth + 1)


def fail_at(depth: int) -> None:
    if depth == 0:
        raise ValueError("at the bottom")
    fail_at(depth - 1)


def unpacked(kind: str, payload: bytes) -> BaseException:
    assert kind == "raised"
    error: BaseException = cloudpickle.loads(payload)
    return error


def test_a_recursion_error_travels_with_the_ends_of_its_traceback() -> None:
    try:
        recurse(0)
    except RecursionError as raised:
        error = raised
    error = unpacked(*pack_exception(7, error))
    assert isinstance(error, RecursionError)
    frames = traceback.extract_tb(error.__traceback__)
    assert len(frames) == 2 * KEPT_FRAMES
    assert frames[0].name == "test_a_recursion_error_travels_with_the_ends_of_its_traceback"
    assert frames[-1].name == "recurse"
    (note,) = error.__notes__
    assert note.startswith("[burla left out ")
    assert "frames from the middle of this traceback]" in note


def test_a_short_traceback_is_kept_whole() -> None:
    try:
        fail_at(3)
    except ValueError as raised:
        error = unpacked(*pack_exception(0, raised))
    assert [frame.name for frame in traceback.extract_tb(error.__traceback__)][1:] == [
        "fail_at"
    ] * 4
    assert not getattr(error, "__notes__", [])


@pytest.mark.parametrize("code", [3, "stopped by hand", None])
def test_sys_exit_becomes_an_error_the_caller_sees(code: object) -> None:
    try:
        raise SystemExit(code)
    except SystemExit as raised:
        error = unpacked(*pack_exception(4, raised))
    assert isinstance(error, FunctionExitError)
    assert not isinstance(error, SystemExit)
    assert error.code == code
    assert error.burla_input_index == 4
    assert f"input 4 called sys.exit({code!r})" in str(error)


def test_a_value_that_does_not_pickle_says_which_input_returned_it() -> None:
    error = unpacked(*pack_value(9, {"lock": threading.Lock()}))
    assert isinstance(error, SerializationError)
    assert "the return value of input 9 (dict) could not be pickled" in str(error)
    assert "cannot pickle '_thread.lock' object" in str(error)
    assert "Return plain data" in str(error)


def test_a_value_that_pickles_goes_as_it_is() -> None:
    kind, payload = pack_value(0, {"a": [1, 2]})
    assert kind == "ok"
    assert cloudpickle.loads(payload) == {"a": [1, 2]}
