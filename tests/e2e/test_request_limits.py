"""A client and a cluster with different request limits agree: a job over the cluster's
limit is fitted to it and runs, and one that cannot fit says what to do."""

from __future__ import annotations

import pytest

from burla import PayloadTooLargeError, remote_parallel_map
from burla.client import local
from burla.client.map import Session

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def small_cluster(tmp_path, monkeypatch):
    """A local cluster that takes jobs of up to 1 MB; this client thinks 256 MB."""
    root = tmp_path / "small-limit"
    monkeypatch.setenv("BURLA_LOCAL_DIR", str(root))
    monkeypatch.setenv("BURLA_LOCAL_CPUS", "2")
    monkeypatch.setenv("BURLA_MAX_JOB_REQUEST_MB", "1")
    try:
        local.start(root)
        monkeypatch.delenv("BURLA_MAX_JOB_REQUEST_MB")
        yield root
    finally:
        Session.close_all()
        local.stop(root)


def test_a_job_over_the_clusters_limit_is_fitted_to_it(small_cluster):
    inputs = [bytes([n]) * 100_000 for n in range(30)]  # 3 MB, each input inline-sized
    assert remote_parallel_map(len, inputs, spinner=False) == [100_000] * 30
    session = Session.for_local_cluster()
    assert session.job_request_limit == 1 << 20  # learned from the cluster's 413


def test_a_job_that_cannot_fit_says_to_split_it(small_cluster):
    with pytest.raises(PayloadTooLargeError, match="Split the inputs over several calls"):
        remote_parallel_map(abs, range(60_000), spinner=False)
    assert remote_parallel_map(abs, [-1, -2], spinner=False) == [1, 2]
