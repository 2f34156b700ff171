"""The wheel `burla deploy` ships: it installs with pip and runs exactly this burla (same
build id), the same code gives the same bytes, and its constraints pin what a cluster's
machines need at the versions installed here."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

from burla.deploy.wheel import build_wheel
from burla.release import build_id


def test_the_wheel_installs_and_runs_this_burla(tmp_path: Path) -> None:
    wheel = build_wheel()
    assert wheel.filename == f"burla_cluster-{wheel.version}-py3-none-any.whl"
    assert wheel.version.endswith(f"+{build_id()}")
    path = tmp_path / wheel.filename
    path.write_bytes(wheel.content)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            f"--target={target}",
            str(path),
        ],
        check=True,
    )
    ran = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(target)!r}); import burla.release as r; "
            "print(r.__file__, r.build_id(), r.version())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    where, installed_build, installed_version = ran.stdout.split()
    assert where.startswith(str(target))
    assert (installed_build, installed_version) == (build_id(), wheel.version)


def test_the_same_code_gives_the_same_wheel() -> None:
    first, second = build_wheel(), build_wheel()
    assert first.content == second.content
    names = zipfile.ZipFile(BytesIO(first.content)).namelist()
    assert names[-1].endswith(".dist-info/RECORD")
    assert "burla/services/main_service/static/index.html" in names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


def test_the_constraints_pin_the_clusters_extras_at_the_installed_versions() -> None:
    pins = dict(line.split("==") for line in build_wheel().constraints.splitlines())
    for needed in ("pydantic", "uvicorn", "google-cloud-compute", "docker", "protobuf"):
        assert pins[needed] == importlib.metadata.version(needed)
    assert "pytest" not in pins  # the dev extra stays on the deployer's machine
    assert "burla-cluster" not in pins
