"""main_service or a node killed mid-job: the client starts this machine's cluster again,
the new main_service takes the job over from the Store, and every result arrives once.

Leases here are ten minutes long: an input that waited for its lease to run out (held by
a node that went without giving it back or saying it held it) would hang these tests."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from burla import remote_parallel_map
from burla.client import local
from burla.client.map import Session, job_results


def slow_square(x: int) -> int:
    time.sleep(0.2)
    return x * x


@pytest.fixture
def cluster_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("BURLA_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("BURLA_LEASE_S", "600")
    monkeypatch.delenv("BURLA_FAULTS", raising=False)
    try:
        yield tmp_path
    finally:
        Session.close_all()
        local.stop(tmp_path)


@pytest.mark.slow
def test_a_job_goes_on_when_main_service_is_killed_and_started_again(cluster_root):
    inputs = list(range(40))
    results = remote_parallel_map(slow_square, inputs, generator=True, spinner=False)
    first = [next(results) for _ in range(5)]
    killed = local.read(cluster_root)
    assert killed is not None
    os.kill(killed.pid, signal.SIGKILL)
    rest = list(results)
    assert first + rest == [x * x for x in inputs]
    restarted = local.read(cluster_root)
    assert restarted is not None
    assert restarted.pid != killed.pid, "the client started the cluster again"


def half_second_square(x: int) -> int:
    time.sleep(0.5)
    return x * x


@pytest.mark.slow
def test_a_small_job_goes_on_when_main_service_is_killed_and_started_again(cluster_root):
    """Six inputs on the one node: each came with its assignment and is in no queue; the
    new main_service queues those whose result is missing, and they run again."""
    inputs = list(range(6))
    results = remote_parallel_map(half_second_square, inputs, generator=True, spinner=False)
    first = next(results)
    killed = local.read(cluster_root)
    assert killed is not None
    os.kill(killed.pid, signal.SIGKILL)
    assert [first, *results] == [x * x for x in inputs]
    restarted = local.read(cluster_root)
    assert restarted is not None
    assert restarted.pid != killed.pid, "the client started the cluster again"


@pytest.mark.slow
def test_a_detached_job_is_finished_by_the_main_service_that_took_it_over(cluster_root):
    job_id = remote_parallel_map(slow_square, list(range(20)), detach=True, spinner=False)
    time.sleep(1.0)
    cluster = local.read(cluster_root)
    assert cluster is not None
    os.kill(cluster.pid, signal.SIGKILL)
    local.start(cluster_root)  # as `burla local up` would
    deadline = time.monotonic() + 120
    while True:
        try:
            assert job_results(job_id) == [x * x for x in range(20)]
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.slow
def test_a_node_killed_mid_input_gives_its_inputs_back_at_once(cluster_root, tmp_path):
    """A node SIGKILLed while its workers run long inputs cannot give them back, but it
    said which it held: main_service puts them back in the queue when it loses the node."""
    started = tmp_path / "started"
    started.mkdir()

    def long_input(x: int) -> int:
        (started / f"{x}-{os.getpid()}").touch()
        time.sleep(3)
        return -x

    job_id = remote_parallel_map(long_input, list(range(2)), detach=True, spinner=False)
    deadline = time.monotonic() + 60
    while len(list(started.iterdir())) < 2:
        assert time.monotonic() < deadline, "the inputs never started"
        time.sleep(0.05)
    time.sleep(1.0)  # past the moment the node says which inputs it holds
    cluster = local.read(cluster_root)
    assert cluster is not None
    nodes = [pid for pid in _children(cluster.pid) if b"node_service" in _cmdline(pid)]
    assert nodes, "the cluster runs a node"
    for pid in nodes:
        os.kill(pid, signal.SIGKILL)
    assert job_results(job_id) == [0, -1]
    assert len(list(started.iterdir())) == 4, "each input ran again, once"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
