"""A function from a user's script (run as __main__, so sent by value) fails on the local
cluster: the remote traceback, `burla jobs show`, `burla jobs repro` (and its --pdb and
--to) name the script and show its source lines, at the script's line numbers, even once
the script is gone from where the code runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import burla

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cluster")]

SCRIPT = '''\
"""A user's analysis script."""

import json
import os
import sys
import threading
import time
import traceback

from burla import RemoteError, remote_parallel_map
from burla.client.map import job_results


def parse(text):
    digits = text.strip()
    return int(digits)


def parse_when_told(go, text):
    while not os.path.exists(go):
        time.sleep(0.05)
    return parse(text)


class Holder(Exception):
    def __init__(self, what):
        super().__init__(f"holding {what}")
        self.lock = threading.Lock()


def hold(what):
    raise Holder(what)


def shown(error):
    return "".join(traceback.format_exception(error))


if __name__ == "__main__":
    report = {}
    try:
        remote_parallel_map(parse, ["1", "two"], spinner=False)
    except ValueError as error:
        report["raised"] = shown(error)
    results = remote_parallel_map(parse, ["3", "four"], return_exceptions=True, spinner=False)
    report["returned"] = shown(results[1])
    try:
        remote_parallel_map(hold, ["a lock"], spinner=False)
    except RemoteError as error:
        report["remote_error"] = error.remote_traceback
    # A job whose inputs fail only once this script has left its folder: no file of it is
    # where the code runs, nor where the job is looked into afterwards.
    go = sys.argv[1]
    job = remote_parallel_map(parse_when_told, [(go, "5"), (go, "three")], detach=True)
    os.rename(__file__, __file__ + ".gone")
    open(go, "w").close()
    job_results(job, return_exceptions=True)
    report["job"] = job
    print(json.dumps(report))
'''


def line_of(text: str) -> int:
    """The line number of the script's line that holds `text`."""
    numbers = [n for n, line in enumerate(SCRIPT.splitlines(), 1) if text in line]
    assert len(numbers) == 1, text
    return numbers[0]


@pytest.fixture(scope="module")
def script_run(cluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The script, run by a Python of its own as a user runs it, and what it reported."""
    folder = tmp_path_factory.mktemp("user")
    script = folder / "analysis.py"
    script.write_text(SCRIPT)
    ran = subprocess.run(
        [sys.executable, str(script), str(folder / "go")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=folder,
    )
    assert ran.returncode == 0, ran.stderr
    assert not script.exists()  # gone, as the script said
    return script, json.loads(ran.stdout.splitlines()[-1])


def frame(script: Path, text: str, function: str) -> str:
    """How a traceback shows the script's frame of `function` at the line holding `text`."""
    return f'File "{script}", line {line_of(text)}, in {function}\n    {text}\n'


def test_the_exception_raised_here_shows_the_scripts_lines(script_run):
    script, report = script_run
    for shown, text in ((report["raised"], "two"), (report["returned"], "four")):
        # The line, and no column markers under it (they would be drawn from stand-in code).
        error = f"ValueError: invalid literal for int() with base 10: '{text}'"
        assert frame(script, "return int(digits)", "parse") + error in shown
        assert "<dynamic-code>" not in shown


def test_a_traceback_formatted_by_the_worker_shows_the_scripts_lines(script_run):
    script, report = script_run
    assert frame(script, "raise Holder(what)", "hold") in report["remote_error"]
    assert "<dynamic-code>" not in report["remote_error"]


def test_burla_jobs_show_and_logs_show_the_scripts_lines_once_it_is_gone(script_run, capsys):
    script, report = script_run
    code, out, err = burla(capsys, "jobs", "show", report["job"])
    assert code == 1, err  # the job failed
    assert frame(script, "return parse(text)", "parse_when_told") in out
    assert frame(script, "return int(digits)", "parse") in out
    assert "<dynamic-code>" not in out
    code, _, logged = burla(capsys, "jobs", "logs", report["job"])  # a traceback: stderr
    assert code == 0, logged
    where = f"line {line_of('return int(digits)')}, in parse"
    assert f'[1]   File "{script}", {where}\n[1]     return int(digits)\n' in logged


def test_repro_shows_the_scripts_lines(script_run, capsys):
    script, report = script_run
    code, out, err = burla(capsys, "jobs", "repro", report["job"], "1")
    assert (code, out) == (1, "")
    assert frame(script, "return parse(text)", "parse_when_told") in err
    assert frame(script, "return int(digits)", "parse") in err
    assert "ValueError: invalid literal for int() with base 10: 'three'" in err
    assert "<dynamic-code>" not in err


def test_repro_pdb_lists_the_scripts_source(script_run):
    script, report = script_run
    debugged = subprocess.run(
        [sys.executable, "-m", "burla.cli", "jobs", "repro", report["job"], "1", "--pdb"],
        input="l\nll\nq\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert debugged.returncode == 1, debugged.stderr
    raising = line_of("return int(digits)")
    assert f"> {script}({raising})parse()\n-> return int(digits)" in debugged.stdout
    listed, whole = debugged.stdout.split("(Pdb)")[1:3]
    assert f"{raising}  ->\t    return int(digits)" in listed  # `l`: around the line
    assert f"{line_of('def parse_when_told(go, text):')}  \tdef parse_when_told(" in listed
    assert f"{line_of('def parse(text):')}  \tdef parse(text):" in whole  # `ll`: parse
    assert "while not os.path.exists(go)" not in whole


def test_the_written_repro_shows_the_scripts_lines_in_a_fresh_python(script_run, capsys, tmp_path):
    script, report = script_run
    folder = tmp_path / "repro-1"
    code, _, err = burla(capsys, "jobs", "repro", report["job"], "1", "--to", str(folder))
    assert code == 0, err
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BURLA")}
    ran = subprocess.run(
        [sys.executable, str(folder / "repro.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=environment,
    )
    assert ran.returncode == 1
    assert frame(script, "return int(digits)", "parse") in ran.stderr
    assert "<dynamic-code>" not in ran.stderr
    debugged = subprocess.run(
        [sys.executable, str(folder / "repro.py"), "--pdb"],
        input="l\nq\n",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=environment,
    )
    assert f"{line_of('return int(digits)')}  ->\t    return int(digits)" in debugged.stdout
