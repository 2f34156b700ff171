"""A worker that goes over func_ram is stopped and reported as out of memory, with the input
it ran; the rest of the cluster goes on. With retries, the input runs again with twice the
memory, and its job's record says what it needed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from burla import OutOfMemoryError, WorkerCrashedError, remote_parallel_map
from burla.client.map import job_results

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BURLA = str(Path(sys.executable).parent / "burla")


def hog_on_one(x):
    if x == 1:
        hog = b"x" * (1 << 30)  # written byte by byte: resident, not just reserved
        return len(hog)
    return x


def over_a_quarter_gb_on_one(x):
    """Input 1 holds 300 MiB: over func_ram=0.25 GB, within 0.5 GB."""
    if x == 1:
        hog = b"x" * (300 << 20)
        time.sleep(0.5)  # held while the worker's memory is looked at (every 0.05 s)
        return len(hog)
    return x


def test_a_worker_over_func_ram_is_stopped_and_named_out_of_memory(cluster):
    with pytest.raises(OutOfMemoryError) as caught:
        remote_parallel_map(hog_on_one, range(3), func_ram=0.25, spinner=False)
    error = caught.value
    assert isinstance(error, WorkerCrashedError)
    assert error.burla_input_index == 1
    message = str(error)
    assert "input 1 failed" in message
    assert "func_ram=0.25 GB" in message
    assert "ask for more with func_ram=" in message
    # Retried, it runs out again with twice the memory, and says what each try had.
    with pytest.raises(OutOfMemoryError, match="input 1 failed after 2 tries") as caught:
        remote_parallel_map(hog_on_one, [0, 1], func_ram=0.25, retries=1, spinner=False)
    assert "with 0.25 GB and 0.5 GB (func_ram=0.25 GB, doubled for each retry)" in str(caught.value)
    assert remote_parallel_map(hog_on_one, range(3), func_ram=2, spinner=False) == [0, 1 << 30, 2]


def test_an_input_out_of_memory_succeeds_on_its_retry_with_twice_the_memory(cluster):
    job_id = remote_parallel_map(
        over_a_quarter_gb_on_one, range(4), func_ram=0.25, retries=1, detach=True
    )
    assert job_results(job_id) == [0, 300 << 20, 2, 3]
    headers = {"authorization": f"Bearer {cluster.token}"}
    with httpx.Client(base_url=cluster.url, headers=headers, timeout=30) as http:
        job = http.get(f"/jobs/{job_id}").json()
    assert job["state"] == "succeeded"
    assert job["memory"] == {
        "grew": [{"input": 1, "ran_out_with": [0.25], "succeeded_with": 0.5}],
        "count": 1,
    }
    shown = subprocess.run([BURLA, "jobs", "show", job_id], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "input 1 ran out of memory with 0.25 GB; it succeeded with 0.5 GB" in shown.stdout
    logs = subprocess.run([BURLA, "jobs", "logs", job_id], capture_output=True, text=True)
    ran_out = "went over 0.25 GB of memory and was stopped (out of memory); it runs again"
    assert f"[1] {ran_out} with 0.5 GB" in logs.stderr


def test_without_grow_memory_every_try_gets_func_ram(cluster):
    with pytest.raises(OutOfMemoryError, match="input 1 failed after 2 tries") as caught:
        remote_parallel_map(
            over_a_quarter_gb_on_one,
            [0, 1],
            func_ram=0.25,
            retries=1,
            grow_memory=False,
            spinner=False,
        )
    message = str(caught.value)
    assert "went over func_ram=0.25 GB" in message
    assert "0.5 GB" not in message
