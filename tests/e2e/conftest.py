"""One local cluster for the end-to-end tests, in a directory of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from burla.client import local
from tests.local_cluster import cluster_in


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.ClusterInfo]:
    root = tmp_path_factory.mktemp("burla-local")
    previous = os.environ.get("BURLA_LOCAL_DIR")
    os.environ["BURLA_LOCAL_DIR"] = str(root)
    try:
        with cluster_in(root) as cluster:
            yield cluster
    finally:
        if previous is None:
            del os.environ["BURLA_LOCAL_DIR"]
        else:
            os.environ["BURLA_LOCAL_DIR"] = previous


@pytest.fixture
def local_dir(cluster: local.ClusterInfo) -> Path:
    return Path(os.environ["BURLA_LOCAL_DIR"])
