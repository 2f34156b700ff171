"""Custom images on the local backend without Docker: a venv built from a requirements file
stands in for an image. It joins the standby definition, so the second job on it finds its
workers running. These tests change the standby definition: they have a cluster of their own."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from burla import ImageError, remote_parallel_map
from burla.core.errors import InvalidRequestError
from tests.local_cluster import cluster_in

pytestmark = pytest.mark.integration

REQUIREMENTS = "six==1.17.0\n"
"""Small, pure Python, and not in the test venv: only the custom image can provide it."""


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("burla-images")
    previous = os.environ.get("BURLA_LOCAL_DIR")
    os.environ["BURLA_LOCAL_DIR"] = str(root)
    try:
        with cluster_in(root):
            yield root
    finally:
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


@pytest.fixture
def keeps_one_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cluster of its own that keeps one image added for jobs."""
    root = tmp_path / "cluster"
    monkeypatch.setenv("BURLA_LOCAL_DIR", str(root))
    monkeypatch.setenv("BURLA_IMAGES_KEPT", "1")
    with cluster_in(root):
        yield root


def test_the_least_recently_used_image_goes_with_its_workers_and_comes_back_when_asked(
    keeps_one_image: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text(REQUIREMENTS)
    second.write_text(REQUIREMENTS + "# the same package, another image\n")

    def run_on(requirements: Path) -> Path:
        done = remote_parallel_map(
            six_and_worker, range(2), dockerfile=str(requirements), spinner=False
        )
        assert {version for version, _, _ in done} == {"1.17.0"}
        (prefix,) = {prefix for _, prefix, _ in done}
        return Path(prefix)

    first_image = run_on(first)
    assert processes_of(first_image / "bin" / "python")
    second_image = run_on(second)
    assert second_image != first_image
    wait_for(lambda: not first_image.exists(), "the first image's venv was removed")
    wait_for(lambda: not processes_of(first_image / "bin" / "python"), "its workers stopped")
    assert processes_of(second_image / "bin" / "python"), "the image kept keeps its workers"

    assert run_on(first) == first_image, "made again for the job that asked for it"
    wait_for(lambda: not second_image.exists(), "the other image went in its turn")


def wait_for(condition: Callable[[], bool], what: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {within_s:g} s: {what}"
        time.sleep(0.1)
