"""Custom images on the local backend without Docker: a venv built from a requirements file
stands in for an image. It joins the standby definition, so the second job on it finds its
workers running. These tests change the standby definition: they have a cluster of their own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from burla import ImageError, remote_parallel_map
from burla.client import local
from burla.client.map import Session
from burla.core.errors import InvalidRequestError

pytestmark = pytest.mark.integration

REQUIREMENTS = "six==1.17.0\n"
"""Small, pure Python, and not in the test venv: only the custom image can provide it."""


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("burla-images")
    previous = os.environ.get("BURLA_LOCAL_DIR")
    os.environ["BURLA_LOCAL_DIR"] = str(root)
    try:
        local.start(root)
        yield root
    finally:
        Session.close_all()
        local.stop(root)
        if previous is None:
            del os.environ["BURLA_LOCAL_DIR"]
        else:
            os.environ["BURLA_LOCAL_DIR"] = previous


def processes_of(python: Path) -> set[int]:
    """The processes this machine runs with `python`."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:  # not a process, or it ended meanwhile
            continue
        if entry.name.isdigit() and argv0 == bytes(python):
            found.add(int(entry.name))
    return found


def six_and_worker(_: int) -> tuple[str, str, int]:
    import importlib
    import os
    import sys

    six = importlib.import_module("six")
    return six.__version__, sys.prefix, os.getpid()


def test_a_requirements_file_makes_a_venv_image_whose_second_job_starts_warm(
    own_cluster: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModuleNotFoundError):
        __import__("six")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(REQUIREMENTS)

    first = remote_parallel_map(
        six_and_worker, range(2), dockerfile=str(requirements), spinner=False
    )
    assert {version for version, _, _ in first} == {"1.17.0"}
    (prefix,) = {prefix for _, prefix, _ in first}
    assert Path(prefix).parent == own_cluster.resolve() / "images"
    running = processes_of(Path(prefix) / "bin" / "python")
    assert running, "the venv image's workers keep running after its job"

    second = remote_parallel_map(
        six_and_worker, range(2), dockerfile=str(requirements), spinner=False
    )
    assert {prefix for _, prefix, _ in second} == {prefix}
    # Workers that were running before the job came ran it.
    assert {pid for _, _, pid in second} <= running


def test_an_unknown_image_or_a_bad_requirements_file_is_a_clear_error(
    own_cluster: Path, tmp_path: Path
) -> None:
    with pytest.raises(ImageError, match="no image 'no-such-image'"):
        remote_parallel_map(abs, [1], image="no-such-image", spinner=False)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("burla-test-no-such-package==0.0.1\n")
    with pytest.raises(ImageError, match="burla-test-no-such-package"):
        remote_parallel_map(abs, [1], dockerfile=str(requirements), spinner=False)


def test_a_build_context_needs_a_dockerfile_and_docker_workers(
    own_cluster: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequestError, match="pass both"):
        remote_parallel_map(abs, [1], build_context=str(tmp_path), spinner=False)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(REQUIREMENTS)
    with pytest.raises(ImageError, match="workers are processes"):
        remote_parallel_map(
            abs, [1], dockerfile=str(requirements), build_context=str(tmp_path), spinner=False
        )
