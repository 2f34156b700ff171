"""`burla jobs repro`: one input of a finished job run again on this machine, from the
function and input the cluster kept, or written to a folder with a script to share."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from burla import remote_parallel_map
from burla.client.map import job_results
from burla.client.repro import KeptInput, repro
from burla.core.errors import NotFoundError, SerializationError
from tests.e2e.test_cli import burla

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cluster")]


def parse(text: str) -> int:
    digits = text.strip()
    return int(digits)


def scale(x: int, factor: int) -> int:
    if factor == 0:
        raise ZeroDivisionError(f"factor 0 for {x}")
    return x * factor


@pytest.fixture(scope="module")
def failed_job(cluster) -> str:
    """A detached job whose input 2 failed and whose other inputs succeeded."""
    job_id = remote_parallel_map(parse, ["1", "2", "three", "4"], detach=True, spinner=False)
    results = job_results(job_id, return_exceptions=True)
    assert isinstance(results[2], ValueError)
    return str(job_id)


def test_a_failed_input_raises_the_same_exception_here(failed_job, capsys):
    code, out, err = burla(capsys, "jobs", "repro", failed_job, "2")
    assert code == 1
    assert out == ""
    assert "ValueError: invalid literal for int() with base 10: 'three'" in err
    assert "in parse" in err  # the function's own frame, not the command's
    assert "burla/cli" not in err
    assert f"burla: input 2 of {failed_job} raised ValueError(" in err


def test_a_succeeding_input_prints_its_value(failed_job, capsys):
    assert burla(capsys, "jobs", "repro", failed_job, "3") == (0, "4\n", "")
    assert burla(capsys, "jobs", "repro", failed_job, "0", "--json") == (0, "1\n", "")


def test_the_python_api_returns_or_raises(failed_job):
    assert repro(failed_job, 1) == 2
    with pytest.raises(ValueError, match="'three'"):
        repro(failed_job, 2)


def test_a_tuple_input_is_called_as_args(cluster, capsys):
    job_id = remote_parallel_map(scale, [(3, 2), (5, 0)], detach=True, spinner=False)
    job_results(job_id, return_exceptions=True)
    assert burla(capsys, "jobs", "repro", job_id, "0") == (0, "6\n", "")
    code, _, err = burla(capsys, "jobs", "repro", job_id, "1")
    assert code == 1
    assert "ZeroDivisionError: factor 0 for 5" in err
    whole = remote_parallel_map(len, [(1, 2, 3)], unpack_tuples=False, detach=True, spinner=False)
    assert job_results(whole) == [3]
    assert burla(capsys, "jobs", "repro", whole, "0") == (0, "3\n", "")


def test_pdb_stops_at_the_frame_that_raised(failed_job):
    shown = subprocess.run(
        [sys.executable, "-m", "burla.cli", "jobs", "repro", failed_job, "2", "--pdb"],
        input="p digits\np text\nq\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert shown.returncode == 1, shown.stderr
    assert "(Pdb)" in shown.stdout
    assert "'three'" in shown.stdout  # `p digits`: the failing frame's local
    assert "ValueError: invalid literal" in shown.stderr


def test_to_writes_a_script_that_reproduces_it_in_a_fresh_python(failed_job, capsys, tmp_path):
    folder = tmp_path / "repro-2"
    code, out, _ = burla(capsys, "jobs", "repro", failed_job, "2", "--to", str(folder))
    assert code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["function.pkl", "input.pkl", "repro.py"]
    assert f"python {folder / 'repro.py'}" in out
    # Elsewhere, without burla's tests on the path: the function travels by value.
    ran = subprocess.run(
        [sys.executable, str(folder / "repro.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert ran.returncode == 1
    assert "ValueError: invalid literal for int() with base 10: 'three'" in ran.stderr
    debugged = subprocess.run(
        [sys.executable, str(folder / "repro.py"), "--pdb"],
        input="p digits\nq\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert "'three'" in debugged.stdout
    burla(capsys, "jobs", "repro", failed_job, "3", "--to", str(tmp_path / "repro-3"))
    ok = subprocess.run(
        [sys.executable, str(tmp_path / "repro-3" / "repro.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert (ok.returncode, ok.stdout) == (0, "4\n")


def test_an_unknown_job_or_input_is_a_clear_error(failed_job, capsys):
    code, _, err = burla(capsys, "jobs", "repro", "job-0000000000000000", "0")
    assert code == 4
    assert "there is no job job-0000000000000000" in err
    code, _, err = burla(capsys, "jobs", "repro", failed_job, "4")
    assert code == 2
    assert "has 4 inputs (0 to 3): there is no input 4" in err
    with pytest.raises(NotFoundError, match="no job"):
        repro("job-0000000000000000", 0)


def test_a_missing_module_is_named(tmp_path, monkeypatch):
    (tmp_path / "only_there.py").write_text("def work(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_there  # type: ignore[import-not-found]

    function = pickle.dumps(only_there.work)  # by reference, as an installed module goes
    monkeypatch.delitem(sys.modules, "only_there")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    kept = KeptInput("job-1", 0, function, pickle.dumps((1,)), None)
    with pytest.raises(SerializationError, match="needs module 'only_there', which this Python"):
        kept.load()


def test_a_pruned_job_says_why_it_is_gone(cluster, capsys):
    job_id = remote_parallel_map(parse, ["5"], detach=True, spinner=False)
    assert job_results(job_id) == [5]
    code, _, err = burla(capsys, "local", "prune", "--max-gb", "20", "--results-max-gb", "0")
    assert code == 0, err
    code, _, err = burla(capsys, "jobs", "repro", job_id, "0")
    assert code == 4
    assert "BURLA_RESULTS_MAX_GB" in err
