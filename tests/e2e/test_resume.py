"""Resuming a job on the local cluster: after its caller was killed mid-job, after
failures with a fixed function, from a shell (`burla jobs rerun`); the caller's recent
jobs listed (`burla jobs --mine`); other inputs refused. Every input a worker runs
leaves a marker file, so a test sees which inputs ran, and how often."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from burla import ResumeError, ResumeMismatchError, remote_parallel_map
from burla.client.connection import Connection
from burla.client.map import job_results
from burla.client.session import Session
from burla.core import stream_wire, wire
from tests.e2e.test_cli import burla
from tests.e2e.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cluster")]
FIRST = 4
"""Inputs below this finish at once; the others wait for a gate file."""


def runs(markers: Path) -> dict[int, int]:
    """How many times each input was run, by the markers its runs left."""
    counts: dict[int, int] = {}
    for marker in markers.iterdir():
        index = int(marker.name.split("-")[0])
        counts[index] = counts.get(index, 0) + 1
    return counts


def square_after_gate(x: int, markers: str, gate: str) -> int:
    """x squared; inputs from FIRST on wait until the gate file exists."""
    Path(markers, f"{x}-{uuid.uuid4().hex}").touch()
    while x >= FIRST and not os.path.exists(gate):
        time.sleep(0.05)
    return x * x


CLIENT = """
import os, sys, time, uuid
from pathlib import Path
from burla import remote_parallel_map

FIRST = {first}

def square_after_gate(x, markers, gate):
    Path(markers, f"{{x}}-{{uuid.uuid4().hex}}").touch()
    while x >= FIRST and not os.path.exists(gate):
        time.sleep(0.05)
    return x * x

inputs = [(x, {markers!r}, {gate!r}) for x in range(10)]
print(remote_parallel_map(square_after_gate, inputs, max_parallelism=3, spinner=False))
"""


def session() -> Connection:
    return Session.for_local_cluster()


def job_state(job_id: str) -> dict[str, Any]:
    return session().call("GET", f"/jobs/{job_id}").json()


def stored_indices(job_id: str) -> dict[int, str]:
    """The inputs with a result stored for the job, and the kind of each (the first)."""
    answer = session().call("GET", f"/jobs/{job_id}/results")
    found: dict[int, str] = {}
    for event, _ in stream_wire.read_events(wire.decode_all(answer.content)):
        if isinstance(event, stream_wire.JobResult):
            found.setdefault(event.index, event.kind)
    return found


def test_a_job_whose_caller_was_killed_is_resumed_without_running_finished_inputs_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    markers.mkdir()
    script = tmp_path / "client.py"
    script.write_text(CLIENT.format(first=FIRST, markers=str(markers), gate=str(gate)))
    jobs_file = Path(os.environ["BURLA_JOBS_FILE"])

    def remembered() -> str:
        return jobs_file.read_text() if jobs_file.exists() else ""

    before = remembered()
    client = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        # The caller remembers its job as soon as the cluster took it: found from here
        # as a crashed notebook's user would find it.
        wait_for(lambda: len(remembered()) > len(before), timeout_s=120)
        code, out, _ = burla(capsys, "jobs", "--mine")
        assert code == 0
        job_id = out.splitlines()[1].split()[0]
        assert "square_after_gate" in out.splitlines()[1]
        wait_for(lambda: job_state(job_id)["counts"]["succeeded"] == FIRST, timeout_s=60)
    finally:
        client.send_signal(signal.SIGKILL)
        client.communicate()
    assert client.returncode == -signal.SIGKILL

    inputs = [(x, str(markers), str(gate)) for x in range(10)]
    # Its inputs from FIRST on wait for the gate: the job runs on, with no caller.
    with pytest.raises(ResumeError, match=f"job {job_id} is still running.*burla jobs cancel"):
        remote_parallel_map(square_after_gate, inputs, resume=job_id, spinner=False)
    assert burla(capsys, "jobs", "cancel", job_id)[0] == 0
    wait_for(lambda: job_state(job_id)["state"] == "canceled", timeout_s=30)
    assert stored_indices(job_id) == dict.fromkeys(range(FIRST), "ok")

    ran = runs(markers)
    assert {x: ran[x] for x in range(FIRST)} == dict.fromkeys(range(FIRST), 1)

    gate.touch()
    results = remote_parallel_map(square_after_gate, inputs, resume=job_id, spinner=False)
    assert results == [x * x for x in range(10)]
    # The inputs that had a result did not run again; each other one ran once more.
    assert runs(markers) == {x: ran.get(x, 0) + (x >= FIRST) for x in range(10)}
    code, out, _ = burla(capsys, "jobs", "--mine")
    newest = out.splitlines()[1].split()
    assert (newest[-2:], code) == (["succeeded", job_id], 0)


def parse_or_heal(text: str, healed: str) -> int:
    """int(text), or (until the `healed` file exists) a ValueError for words; leaves a
    marker of each run beside the healed file."""
    Path(healed).parent.joinpath("markers", f"{text}-{uuid.uuid4().hex}").touch()
    if not text.isdigit() and not os.path.exists(healed):
        raise ValueError(f"not a number: {text}")
    return len(text) if not text.isdigit() else int(text)


def parse_fixed(text: str, healed: str) -> int:
    """parse_or_heal, fixed: a word counts its letters."""
    Path(healed).parent.joinpath("markers", f"{text}-{uuid.uuid4().hex}").touch()
    return int(text) if text.isdigit() else len(text)


TEXTS = ["1", "two", "3", "four", "5", "6"]


def failed_job(tmp_path: Path) -> tuple[str, list[tuple[str, str]], Path]:
    """A job whose inputs 1 and 3 failed; its inputs and its markers' folder."""
    (tmp_path / "markers").mkdir()
    inputs = [(text, str(tmp_path / "healed")) for text in TEXTS]
    job_id = remote_parallel_map(parse_or_heal, inputs, detach=True, spinner=False)
    results = job_results(job_id, return_exceptions=True)
    assert [type(r) for r in results] == [int, ValueError, int, ValueError, int, int]
    return job_id, inputs, tmp_path / "markers"


def test_failed_inputs_run_again_with_a_fixed_function(tmp_path: Path) -> None:
    job_id, inputs, markers = failed_job(tmp_path)
    # The same broken function: the failures come back in their places, nothing else runs.
    again = remote_parallel_map(
        parse_or_heal, inputs, resume=job_id, return_exceptions=True, spinner=False
    )
    assert [type(r) for r in again] == [int, ValueError, int, ValueError, int, int]
    assert again[1].burla_input_index == 1
    assert runs_by_text(markers) == {"1": 1, "two": 2, "3": 1, "four": 2, "5": 1, "6": 1}

    fixed = remote_parallel_map(parse_fixed, inputs, resume=job_id, spinner=False)
    assert fixed == [1, 3, 3, 4, 5, 6]
    assert runs_by_text(markers) == {"1": 1, "two": 3, "3": 1, "four": 3, "5": 1, "6": 1}

    # As results come, in any order: every input once.
    streamed = remote_parallel_map(
        parse_fixed, inputs, resume=job_id, generator=True, ordered=False, spinner=False
    )
    assert sorted(streamed) == sorted(fixed)


def runs_by_text(markers: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for marker in markers.iterdir():
        text = marker.name.split("-")[0]
        counts[text] = counts.get(text, 0) + 1
    return counts


def test_other_inputs_are_refused_before_anything_runs(tmp_path: Path) -> None:
    job_id, inputs, markers = failed_job(tmp_path)
    ran = runs_by_text(markers)
    with pytest.raises(ResumeMismatchError, match=f"job {job_id} has 6 inputs and this call 5"):
        remote_parallel_map(parse_fixed, inputs[:5], resume=job_id, spinner=False)
    changed = [*inputs[:2], ("33", inputs[2][1]), *inputs[3:]]
    with pytest.raises(ResumeMismatchError, match=f"input 2 is not input 2 of job {job_id}"):
        remote_parallel_map(parse_fixed, changed, resume=job_id, spinner=False)
    with pytest.raises(ResumeError, match="there is no job job-never-was to resume"):
        remote_parallel_map(parse_fixed, inputs, resume="job-never-was", spinner=False)
    assert runs_by_text(markers) == ran


def size_of(data: bytes) -> int:
    return len(data)


def test_big_inputs_are_matched_by_the_digest_sent_with_their_upload() -> None:
    big = [b"a" * (2 << 20), b"b" * (2 << 20)]  # over the inline limit: uploaded
    job_id = remote_parallel_map(size_of, big, detach=True, spinner=False)
    assert job_results(job_id) == [2 << 20, 2 << 20]
    assert remote_parallel_map(size_of, big, resume=job_id, spinner=False) == [2 << 20] * 2
    other = [big[0], b"c" * (2 << 20)]
    with pytest.raises(ResumeMismatchError, match="input 1 is not input 1"):
        remote_parallel_map(size_of, other, resume=job_id, spinner=False)


def test_rerun_from_a_shell_runs_what_failed_or_never_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id, _, markers = failed_job(tmp_path)
    code, out, _ = burla(capsys, "jobs", "rerun", job_id)
    assert code == 1, "the function the job kept still fails"
    first = out.split(":")[0]
    assert "2 failed" in out
    assert f"burla jobs result {first}" in out
    assert runs_by_text(markers) == {"1": 1, "two": 2, "3": 1, "four": 2, "5": 1, "6": 1}

    (tmp_path / "healed").touch()  # the same function succeeds now
    code, out, _ = burla(capsys, "jobs", "rerun", job_id, "--failed-only")
    assert code == 0, out
    second = out.split(":")[0]
    assert f"resumes {job_id}" in out
    assert "6 succeeded, 0 failed, 0 never ran" in out
    assert job_results(second) == [1, 3, 3, 4, 5, 6]
    code, out, _ = burla(capsys, "jobs", "result", second, "--json")
    assert (code, out) == (0, "[1, 3, 3, 4, 5, 6]\n")
    code, out, _ = burla(capsys, "jobs", "show", second)
    assert out.splitlines()[:2] == [
        f"{second}: succeeded, 6 inputs",
        f"resumes {job_id}, only its failed inputs",
    ]
    code, out, _ = burla(capsys, "jobs", "--mine")
    listed = [line.split()[0] for line in out.splitlines()[1:4]]
    assert listed == [second, first, job_id]


def test_failed_only_leaves_inputs_that_never_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    markers.mkdir()
    inputs = [(x, str(markers), str(gate)) for x in range(FIRST + 2)]
    job_id = remote_parallel_map(
        square_after_gate, inputs, detach=True, max_parallelism=2, spinner=False
    )
    wait_for(lambda: job_state(job_id)["counts"]["succeeded"] == FIRST, timeout_s=60)
    assert burla(capsys, "jobs", "cancel", job_id)[0] == 0
    wait_for(lambda: job_state(job_id)["state"] == "canceled", timeout_s=30)
    code, out, _ = burla(capsys, "jobs", "rerun", job_id, "--failed-only")
    assert code == 1, "inputs that never ran stay without results"
    assert f"canceled (resumes {job_id}), {FIRST} succeeded, 0 failed, 2 never ran" in out


def test_a_running_job_is_not_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "markers").mkdir()
    inputs = [(FIRST, str(tmp_path / "markers"), str(tmp_path / "gate"))]
    job_id = remote_parallel_map(square_after_gate, inputs, detach=True, spinner=False)
    try:
        code, _, err = burla(capsys, "jobs", "rerun", job_id)
        assert code != 0
        assert f"job {job_id} is still running" in err
        assert f"burla jobs cancel {job_id}" in err
    finally:
        assert burla(capsys, "jobs", "cancel", job_id)[0] == 0
