"""A job's function carries its by-value code's file names and text: unpickled where its
files do not exist (a worker, a fresh Python running repro.py), its tracebacks and pdb
show the caller's file, line and source line."""

from __future__ import annotations

import importlib
import json
import linecache
import subprocess
import sys
import textwrap
import traceback
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from burla.client import source_pickler
from burla.client.serialize import dumps_function

MODULE = """\
import math


def parse(text):
    digits = text.strip()
    return checked(int(digits))


def checked(number):
    if number < 0:
        raise ValueError(f"{number} is negative")  # the raising line
    return math.sqrt(number)
"""
RAISING_LINE = 11


@pytest.fixture
def own_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """A module of the caller's own, in a file of its own, sent by value."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "analysis.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("analysis")
    cloudpickle.register_pickle_by_value(module)
    try:
        yield module
    finally:
        cloudpickle.unregister_pickle_by_value(module)
        del sys.modules["analysis"]
        linecache.cache.pop(module.__file__, None)


def run_elsewhere(
    payload: bytes, tmp_path: Path, commands: str = ""
) -> subprocess.CompletedProcess[str]:
    """Unpickle `payload` in a fresh Python that has only cloudpickle of burla's
    dependencies on its path, call it on "-4" and print the traceback (or, with
    `commands`, debug it with pdb)."""
    (tmp_path / "function.pkl").write_bytes(payload)
    script = textwrap.dedent(
        """\
        import pdb, sys, traceback
        import cloudpickle

        function = cloudpickle.loads(open("function.pkl", "rb").read())
        assert not any(name.startswith("burla") for name in sys.modules), "burla was imported"
        try:
            function("-4")
        except ValueError as error:
            if sys.argv[1:] == ["--pdb"]:
                pdb.post_mortem(error.__traceback__)
            else:
                traceback.print_exc()
        """
    )
    cloudpickle_home = str(Path(cloudpickle.__file__).parents[1])
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {cloudpickle_home!r})\n{script}",
        ]
        + (["--pdb"] if commands else []),
        input=commands,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_a_traceback_elsewhere_names_the_callers_file_and_shows_its_lines(own_module, tmp_path):
    payload = dumps_function(own_module.parse)
    file = own_module.__file__
    Path(file).unlink()  # as on a worker: no such file there
    shown = run_elsewhere(payload, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "<dynamic-code>" not in shown.stderr
    assert f'File "{file}", line 6, in parse\n    return checked(int(digits))\n' in shown.stderr
    assert (
        f'File "{file}", line {RAISING_LINE}, in checked\n'
        '    raise ValueError(f"{number} is negative")  # the raising line\n'
    ) in shown.stderr


def test_pdb_elsewhere_lists_the_callers_source(own_module, tmp_path):
    payload = dumps_function(own_module.parse)
    Path(own_module.__file__).unlink()
    shown = run_elsewhere(payload, tmp_path, "l\nll\nq\n")
    assert f"{own_module.__file__}({RAISING_LINE})checked()" in shown.stdout
    listed = shown.stdout.split("(Pdb)")[1]  # `l`: the lines around the one that raised
    assert f"{RAISING_LINE}  ->\t        raise ValueError" in listed
    assert "  9  \tdef checked(number):" in listed
    whole = shown.stdout.split("(Pdb)")[2]  # `ll`: the whole function
    assert "  9  \tdef checked(number):" in whole
    assert " 12  \t    return math.sqrt(number)" in whole


def test_code_of_a_notebook_cell_carries_the_cells_text():
    # A notebook compiles each cell under a name of its own and puts its text in linecache.
    name = "<cell 3>"
    text = "def shout(word):\n    return word.upper() + undefined_name\n"
    linecache.cache[name] = (len(text), None, text.splitlines(keepends=True), name)
    try:
        namespace: dict[str, Any] = {"__name__": "__main__"}
        exec(compile(text, name, "exec"), namespace)
        payload = dumps_function(namespace["shout"])
        del linecache.cache[name]  # here the cell is unknown, as on a worker
        function = cloudpickle.loads(payload)
        with pytest.raises(NameError) as caught:
            function("hi")
        shown = "".join(traceback.format_exception(caught.value))
    finally:
        linecache.cache.pop(name, None)
    assert 'File "<cell 3>", line 2, in shout\n    return word.upper() + undefined_name\n' in shown


def test_each_files_text_travels_once(own_module):
    payload = dumps_function(own_module.parse)  # parse and checked, from one file
    assert payload.count(b"the raising line") == 1


def test_a_file_edited_since_its_code_was_imported_sends_no_lines(own_module, tmp_path):
    Path(own_module.__file__).write_text("\n\n\n" + MODULE)  # every line moved down
    payload = dumps_function(own_module.parse)
    assert b"the raising line" not in payload
    Path(own_module.__file__).unlink()
    shown = run_elsewhere(payload, tmp_path)
    assert f'File "{own_module.__file__}", line {RAISING_LINE}, in checked\n' in shown.stderr
    assert "raise ValueError" not in shown.stderr  # no wrong line, no line at all


def test_a_big_file_or_too_much_text_is_left_out(own_module, monkeypatch):
    monkeypatch.setattr(source_pickler, "FILE_CHARS", len(MODULE) - 1)
    assert b"the raising line" not in dumps_function(own_module.parse)
    monkeypatch.setattr(source_pickler, "FILE_CHARS", len(MODULE))
    assert b"the raising line" in dumps_function(own_module.parse)
    monkeypatch.setattr(source_pickler, "TOTAL_CHARS", len(MODULE) - 1)
    assert b"the raising line" not in dumps_function(own_module.parse)


def test_code_imported_by_reference_carries_no_text():
    assert dumps_function(json.dumps) == cloudpickle.dumps(json.dumps)


def test_lines_are_those_of_the_code_sent_when_the_file_changes_after(own_module):
    payload = dumps_function(own_module.parse)
    Path(own_module.__file__).write_text("# edited while the job runs\n" * 20)
    function: Callable[[str], float] = cloudpickle.loads(payload)
    assert function("16") == 4.0
    with pytest.raises(ValueError, match="-1 is negative") as caught:
        function("-1")
    shown = "".join(traceback.format_exception(caught.value))
    assert f'line {RAISING_LINE}, in checked\n    raise ValueError(f"{{number}} is' in shown
    assert "edited" not in shown


def test_a_file_is_sent_as_it_is_on_disk_not_as_a_job_here_left_it(own_module):
    # A job's function unpickled here (burla.client.repro.repro) puts its text in this
    # Python's linecache; the module is edited and reloaded afterwards.
    cloudpickle.loads(dumps_function(own_module.parse))
    Path(own_module.__file__).write_text(MODULE.replace("the raising line", "edited since"))
    reloaded = importlib.reload(own_module)
    payload = dumps_function(reloaded.parse)
    assert b"edited since" in payload
    assert b"the raising line" not in payload
