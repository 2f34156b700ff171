"""A call of burla.remote_parallel_map that goes to this machine's cluster begins starting
it before the rest of the client loads; a call from inside a job or to a cloud cluster
starts nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CALL = """
import json, sys
import burla
from burla.client import local

launched = []
def record(root=None, backend="local"):
    launched.append({"client_loaded": "burla.client.map" in sys.modules,
                     "root": str(root), "backend": backend})
local.launch = record
try:
    burla.remote_parallel_map(abs, [1], image="x", dockerfile="y", spinner=False)
except burla.InvalidRequestError:
    pass  # refused at once: nothing was sent
print(json.dumps(launched))
"""


def launches(tmp_path, **env: str) -> list[dict[str, object]]:
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "BURLA_LOCAL_DIR": str(tmp_path / "cluster"),
    }
    environment |= {"BURLA_CONFIG": str(tmp_path / "none.toml")} | env
    run = subprocess.run(
        [sys.executable, "-c", CALL], capture_output=True, text=True, env=environment, check=True
    )
    return json.loads(run.stdout)


def test_a_call_begins_starting_the_cluster_before_the_client_loads(tmp_path):
    expected = {"client_loaded": False, "root": str(tmp_path / "cluster"), "backend": "local"}
    assert launches(tmp_path) == [expected]


@pytest.mark.parametrize(
    "env", [{"BURLA_BACKEND": "gcp"}, {"BURLA_JOB_TOKEN": "a-jobs-own-token"}], ids=["gcp", "job"]
)
def test_a_call_elsewhere_starts_nothing(tmp_path, env):
    assert launches(tmp_path, **env) == []
