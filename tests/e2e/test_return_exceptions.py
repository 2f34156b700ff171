"""return_exceptions=True on a real local cluster: every input runs, and a failed one's
exception stands in the results in its place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import httpx
import pytest

from burla import InputTimeoutError, WorkerCrashedError, remote_parallel_map
from burla.client import local
from burla.client.map import job_results

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cluster")]


def picky(x):
    if x % 3 == 1:
        raise ValueError(f"no {x}")
    return x * 10


def test_failed_inputs_stand_in_place_and_every_input_runs(tmp_path: Path):
    def run_and_mark(x):
        if x == 0:
            raise KeyError("the first input fails at once")
        time.sleep(0.1)  # without return_exceptions the job is canceled long before the end
        (tmp_path / str(x)).touch()
        return picky(x)

    results = remote_parallel_map(run_and_mark, range(20), return_exceptions=True, spinner=False)
    failed = [r.burla_input_index for r in results if isinstance(r, Exception)]
    assert failed == [0, 1, 4, 7, 10, 13, 16, 19]
    assert isinstance(results[0], KeyError)
    assert all(type(results[n]) is ValueError for n in failed[1:])
    assert str(results[4]) == "no 4"
    assert [r for r in results if not isinstance(r, Exception)] == [
        10 * x for x in range(20) if x % 3 != 1 and x != 0
    ]
    assert sorted(int(name) for name in os.listdir(tmp_path)) == list(range(1, 20))
    # The remote traceback, its frames in this file, as when it is raised.
    shown = "".join(traceback.format_exception(results[4]))
    assert f'File "{__file__}"' in shown
    assert 'raise ValueError(f"no {x}")' in shown


def test_a_generator_in_completion_order_yields_exceptions_as_they_come():
    stream = remote_parallel_map(
        picky, range(9), generator=True, ordered=False, return_exceptions=True, spinner=False
    )
    assert not isinstance(stream, list)
    seen = list(stream)
    failures = sorted(r.burla_input_index for r in seen if isinstance(r, ValueError))
    assert failures == [1, 4, 7]
    assert sorted(r for r in seen if isinstance(r, int)) == [0, 20, 30, 50, 60, 80]
    in_order = remote_parallel_map(picky, range(3), generator=True, return_exceptions=True)
    assert [type(r) for r in in_order] == [int, ValueError, int]


def test_an_input_stands_as_an_exception_only_once_its_tries_are_used(tmp_path: Path):
    def flaky(x):
        tries = tmp_path / f"tries-{x}"
        with open(tries, "a") as log:
            log.write("try\n")
        if x == 1 and len(tries.read_text().split()) == 1:
            raise RuntimeError("the first try of input 1 fails")
        if x == 2:
            raise RuntimeError("input 2 always fails")
        return x

    results = remote_parallel_map(flaky, range(4), retries=1, return_exceptions=True, spinner=False)
    assert results[:2] == [0, 1]
    assert results[3] == 3
    assert isinstance(results[2], RuntimeError)
    assert results[2].burla_input_index == 2
    assert (tmp_path / "tries-2").read_text().split() == ["try", "try"]


def test_a_crashed_worker_and_a_timeout_stand_as_burla_errors():
    def crash_or_nap(x):
        if x == 1:
            os._exit(3)
        if x == 2:
            time.sleep(30)
        return x

    results = remote_parallel_map(
        crash_or_nap, range(5), timeout=1, return_exceptions=True, spinner=False
    )
    assert results[0] == 0
    assert results[3:] == [3, 4]
    assert type(results[1]) is WorkerCrashedError
    assert results[1].burla_input_index == 1
    assert "input 1" in str(results[1])
    assert type(results[2]) is InputTimeoutError
    assert results[2].burla_input_index == 2


def test_a_detached_job_with_failures_ends_failed_and_its_results_keep_them(cluster):
    job_id = remote_parallel_map(picky, range(5), detach=True)
    results = job_results(job_id, return_exceptions=True)
    assert [type(r) for r in results] == [int, ValueError, int, int, ValueError]
    assert results[4].burla_input_index == 4
    with pytest.raises(ValueError, match=r"no [14]"):  # the first to fail
        job_results(job_id)
    job = api_get(cluster, f"/jobs/{job_id}")
    assert job["state"] == "failed"
    assert job["counts"]["succeeded"] == 3
    assert job["counts"]["failed"] == 2


def api_get(cluster: local.ClusterInfo, path: str) -> dict:
    headers = {"authorization": f"Bearer {cluster.token}"}
    with httpx.Client(base_url=cluster.url, headers=headers, timeout=30) as http:
        return http.get(path).json()


def test_burla_jobs_result_prints_failures_in_place_and_exits_1():
    job_id = remote_parallel_map(picky, range(3), detach=True)
    burla = str(Path(sys.executable).parent / "burla")
    printed = subprocess.run(
        [burla, "jobs", "result", job_id, "--json", "--return-exceptions"],
        capture_output=True,
        text=True,
    )
    assert printed.returncode == 1
    assert json.loads(printed.stdout) == [
        0,
        {"input": 1, "error": "ValueError", "message": "no 1"},
        20,
    ]
    # The remote traceback, with picky's file, line and source line.
    raising = picky.__code__.co_firstlineno + 2
    shown = f'File "{__file__}", line {raising}, in picky\n    raise ValueError(f"no {{x}}")'
    assert shown in printed.stderr
    assert "\nValueError: no 1\n" in printed.stderr
    assert f"burla: input 1 of {job_id} raised ValueError('no 1')" in printed.stderr
