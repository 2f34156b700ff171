"""A local cluster whose services fail a share of their Store and BlobStore calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from burla.client import local
from burla.client.map import Session


@dataclass(frozen=True)
class FaultyCluster:
    root: Path
    faults_log: Path
    info: local.ClusterInfo

    def injected(self) -> list[str]:
        return self.faults_log.read_text().splitlines() if self.faults_log.exists() else []


@pytest.fixture(scope="module")
def faulty_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyCluster]:
    root = tmp_path_factory.mktemp("burla-faulty")
    log = root / "faults.log"
    saved = {name: os.environ.get(name) for name in ("BURLA_LOCAL_DIR", "BURLA_FAULTS")}
    os.environ["BURLA_LOCAL_DIR"] = str(root)
    os.environ["BURLA_FAULTS"] = f"store=0.2,blobs=0.3,seed=5,log={log}"
    try:
        yield FaultyCluster(root, log, local.start(root))
    finally:
        Session.close_all()
        local.stop(root)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
