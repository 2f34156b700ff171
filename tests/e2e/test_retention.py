"""Finished jobs' results kept within a size on this machine's cluster: `burla local
prune --results-max-gb` removes the jobs that finished longest ago, and asking for their
results says why they are gone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from burla import remote_parallel_map
from burla.client.map import job_results
from burla.core.errors import NotFoundError
from tests.e2e.test_cli import burla_json
from tests.local_cluster import cluster_in


def block(n: int) -> bytes:
    return bytes([n]) * 100_000


def test_prune_removes_the_longest_finished_jobs_results(
    cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    job_ids = []
    for n in range(3):
        job_ids.append(remote_parallel_map(block, [n, n], detach=True, spinner=False))
        assert job_results(job_ids[-1]) == [block(n), block(n)]
    # Each job keeps about 200 KB of results: room for the newest only, and more that
    # earlier tests' jobs may hold (they finished before, so they go first).
    answer = burla_json(
        capsys, "local", "prune", "--max-gb", "20", "--results-max-gb", str(250_000 / 2**30)
    )
    assert set(job_ids[:2]) <= set(answer["results"]["jobs"])
    assert job_ids[2] not in answer["results"]["jobs"]
    assert answer["results"]["kept_bytes"] <= 250_000
    for old in job_ids[:2]:
        with pytest.raises(NotFoundError, match="BURLA_RESULTS_MAX_GB"):
            job_results(old)
    assert job_results(job_ids[2]) == [block(2), block(2)]


def test_a_jobs_big_inputs_and_function_stay_with_its_results_until_it_is_pruned(
    cluster, local_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = remote_parallel_map(len, [bytes(3 << 20), b"x"], detach=True, spinner=False)
    assert job_results(job_id) == [3 << 20, 1]

    def uploads() -> list[str]:
        return [
            str(path)
            for path in (local_dir / "blobs" / "uploads").rglob("*")
            if job_id in str(path)
        ]

    assert uploads(), "the big input stays in the blob store while the job's results do"
    answer = burla_json(capsys, "local", "prune", "--max-gb", "20", "--results-max-gb", "0")
    assert job_id in answer["results"]["jobs"]
    assert [path for path in uploads() if Path(path).is_file()] == []


@pytest.fixture
def small_cluster(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A cluster of its own that keeps about 300 KB of finished jobs' results."""
    monkeypatch.setenv("BURLA_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("BURLA_RESULTS_MAX_GB", str(300_000 / 2**30))
    with cluster_in(tmp_path) as cluster:
        yield cluster


def test_main_service_keeps_finished_jobs_results_within_its_limit(small_cluster) -> None:
    job_ids = []
    for n in range(4):
        job_ids.append(remote_parallel_map(block, [n, n], detach=True, spinner=False))
        assert job_results(job_ids[-1]) == [block(n), block(n)]
    deadline = time.monotonic() + 60
    while True:  # the prune after a job runs beside the answer to its client
        try:
            job_results(job_ids[1])
        except NotFoundError:
            break
        assert time.monotonic() < deadline, "the older jobs' results were kept"
        time.sleep(0.1)
    with pytest.raises(NotFoundError, match="BURLA_RESULTS_MAX_GB"):
        job_results(job_ids[0])
    assert job_results(job_ids[3]) == [block(3), block(3)]
