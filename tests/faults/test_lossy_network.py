"""Jobs whose requests and answers cross a network that delays and loses answers: each job
is taken once, every result arrives once, and nothing hangs."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from burla import remote_parallel_map
from tests.faults.proxy import LossyProxy


def triple(x: int) -> int:
    return 3 * x


@pytest.fixture
def lossy(faulty_cluster, monkeypatch: pytest.MonkeyPatch):
    parts = urlsplit(faulty_cluster.info.url)
    proxy = LossyProxy((parts.hostname or "", parts.port or 80), drop_every=4, delay_s=0.05)
    monkeypatch.setenv("BURLA_BACKEND", "gcp")  # a cluster reached at an address
    monkeypatch.setenv("BURLA_MAIN_URL", proxy.url)
    monkeypatch.setenv("BURLA_TOKEN", faulty_cluster.info.token)
    yield proxy
    proxy.close()


def test_lost_answers_are_asked_again_without_running_a_job_twice(lossy, faulty_cluster):
    jobs_before = _jobs(faulty_cluster)
    for size in (1, 40, 1, 200, 3, 1, 1, 500):
        inputs = list(range(size))
        assert remote_parallel_map(triple, inputs, spinner=False) == [3 * x for x in inputs]
    assert lossy.dropped >= 3, "answers were really lost"
    assert _jobs(faulty_cluster) - jobs_before == 8, "each job was taken exactly once"


def _jobs(cluster) -> int:
    from burla.client.http import HttpPool

    pool = HttpPool(cluster.info.url, {"authorization": f"Bearer {cluster.info.token}"}, 30)
    try:
        return len(
            pool.request("GET", "/jobs", params={"all": "true", "limit": 10000}).json()["jobs"]
        )
    finally:
        pool.close()
