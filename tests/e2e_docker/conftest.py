"""One Docker-backed cluster for these tests: main_service and node_service processes on
this machine, whose workers are real Docker containers of burla's default image.

The engine is started and the image built if needed (tests/components/docker.py). The
cluster lives in a directory of its own, named by BURLA_DOCKER_DIR for the whole session,
and is stopped at the end; no container labelled as one of its nodes' may be left.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from burla.backends.docker.cluster import cluster_containers, cluster_prefix
from burla.client import local
from burla.client.map import Session


@dataclass(frozen=True)
class DockerCluster:
    root: Path
    info: local.ClusterInfo
    engine: Any
    """A docker.DockerClient of the engine the workers run on."""
    image: str
    cold_start_s: float

    def containers(self) -> list[Any]:
        """The cluster's running containers, found by their labels."""
        prefix = f"{cluster_prefix(self.root)}-"
        running = self.engine.containers.list(filters={"label": "burla.node"})
        return [c for c in running if c.labels["burla.node"].startswith(prefix)]


@pytest.fixture(scope="session")
def docker_cluster(
    docker_engine: Any, default_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerCluster]:
    with running_cluster(
        tmp_path_factory.mktemp("burla-docker"), docker_engine, default_image
    ) as c:
        yield c


@contextlib.contextmanager
def running_cluster(root: Path, engine: Any, image: str) -> Iterator[DockerCluster]:
    """A Docker-backed cluster in `root`, which backend="docker" finds meanwhile."""
    previous = os.environ.get("BURLA_DOCKER_DIR")
    os.environ["BURLA_DOCKER_DIR"] = str(root)
    try:
        started = time.monotonic()
        info = local.start(root, backend="docker")
        cold_start_s = time.monotonic() - started
        yield DockerCluster(root, info, engine, image, cold_start_s)
    finally:
        Session.close_all()
        local.stop(root)
        if previous is None:
            del os.environ["BURLA_DOCKER_DIR"]
        else:
            os.environ["BURLA_DOCKER_DIR"] = previous
        left = cluster_containers(engine, root)
        for container_id in left.values():
            engine.api.remove_container(container_id, force=True)
        assert not left, f"the stopped cluster left Docker containers behind: {sorted(left)}"
