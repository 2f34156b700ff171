"""A remote traceback through code shipped by value shows the caller's files and lines:
the worker's frames, pickled with the exception, are matched back to the caller's code."""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from burla.client.remote_traceback import with_source_files
from burla.client.serialize import dumps_function
from burla.services.container_service.outcome import pack_exception

HELPERS = """\
def inner(y):
    return 1 / y


def outer(x):
    try:
        return inner(x - 1)
    except ZeroDivisionError as error:
        raise ValueError(f"outer({x}) failed") from error
"""


@pytest.fixture
def own_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A module of the caller's own, in a file, sent by value as burla sends it."""
    (tmp_path / "own_helpers.py").write_text(HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("own_helpers")
    cloudpickle.register_pickle_by_value(module)
    try:
        yield module
    finally:
        cloudpickle.unregister_pickle_by_value(module)
        del sys.modules["own_helpers"]


def raised_remotely(function: object, argument: object) -> BaseException:
    """What the client gets back when a worker runs `function` (sent by value) and it
    raises: the worker pickles the exception with its traceback, the client unpickles."""
    remote_function = cloudpickle.loads(cloudpickle.dumps(function))
    try:
        remote_function(argument)
    except Exception as error:
        kind, payload = pack_exception(0, error)
        assert kind == "raised"
        received: BaseException = cloudpickle.loads(payload)
        return received
    raise AssertionError("the function did not raise")


def test_frames_of_code_sent_by_value_name_their_file_and_show_their_line(own_module):
    error = raised_remotely(own_module.outer, 1)
    before = "".join(traceback.format_exception(error))
    assert "<dynamic-code>" in before  # what cloudpickle leaves

    shown = "".join(traceback.format_exception(with_source_files(error)))
    assert "<dynamic-code>" not in shown
    assert f'File "{own_module.__file__}", line 9, in outer' in shown
    assert 'raise ValueError(f"outer({x}) failed") from error' in shown
    # Its cause, raised deeper, too; and no column markers drawn from stand-in code.
    assert f'File "{own_module.__file__}", line 2, in inner' in shown
    assert "    return 1 / y\n" in shown
    lines = shown.splitlines()
    for n, line in enumerate(lines):
        if "own_helpers.py" in line:
            assert "^" not in lines[n + 2], shown
    assert isinstance(error, ValueError)
    assert str(error) == "outer(1) failed"


def test_a_frame_that_matches_no_code_of_the_callers_is_left_as_it_came(own_module):
    error = raised_remotely(own_module.outer, 1)
    (Path(own_module.__file__)).write_text("# the file changed since\n")
    shown = "".join(traceback.format_exception(with_source_files(error)))
    assert "<dynamic-code>" in shown


def test_frames_that_name_their_file_show_their_line_without_misplaced_markers(own_module):
    function = cloudpickle.loads(dumps_function(own_module.outer))  # as burla sends it
    try:
        function(1)
    except ValueError as raised:
        received = cloudpickle.loads(pack_exception(0, raised)[1])
    before = "".join(traceback.format_exception(received))
    assert "^^^" in before  # drawn from tblib's stand-in code, under the wrong columns
    shown = "".join(traceback.format_exception(with_source_files(received)))
    assert f'File "{own_module.__file__}", line 9, in outer\n' in shown
    assert f'File "{own_module.__file__}", line 2, in inner\n    return 1 / y\n' in shown
    assert "^" not in shown
