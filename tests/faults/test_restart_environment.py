"""main_service killed under a job that runs on a custom image and needs a package: the
main_service that takes the job over starts the image again and the job's packages are
linked in as before."""

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


def slow_parse(text: str) -> tuple[str, str]:
    import importlib
    import time

    import iniconfig  # a package of the caller's venv, replicated

    time.sleep(0.2)
    six = importlib.import_module("six")  # only the custom image (a venv) has it
    return iniconfig.IniConfig("x.ini", data=text)["s"]["k"], six.__version__


@pytest.fixture
def cluster_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("BURLA_LOCAL_DIR", str(tmp_path / "cluster"))
    monkeypatch.setenv("BURLA_LEASE_S", "3")
    monkeypatch.delenv("BURLA_FAULTS", raising=False)
    try:
        yield tmp_path / "cluster"
    finally:
        Session.close_all()
        local.stop(tmp_path / "cluster")


@pytest.mark.slow
def test_a_job_on_a_custom_image_with_packages_is_taken_over(
    cluster_root: Path, tmp_path: Path
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("six==1.17.0\n")
    inputs = [f"[s]\nk = {n}\n" for n in range(16)]
    job_id = remote_parallel_map(
        slow_parse, inputs, dockerfile=str(requirements), detach=True, spinner=False
    )
    time.sleep(1.0)
    cluster = local.read(cluster_root)
    assert cluster is not None
    os.kill(cluster.pid, signal.SIGKILL)
    local.start(cluster_root)
    deadline = time.monotonic() + 120
    while True:
        try:
            assert job_results(job_id) == [(str(n), "1.17.0") for n in range(16)]
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
