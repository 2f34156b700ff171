"""A real image registry for the tests: the reference Distribution registry (Debian's
docker-registry), one per test session on a free loopback port, standing in for Artifact
Registry.

It keeps its images in a temporary directory and runs in its own process group; the fixture
stops it by PID and removes the directory. Docker pushes to and pulls from a registry on
127.0.0.0/8 over plain HTTP without any setting. A machine without docker-registry fails
the tests that need it, saying how to install it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.components.redis import free_loopback_port, stop_group

START_TIMEOUT_S = 20.0
CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass(frozen=True)
class Registry:
    port: int

    @property
    def host(self) -> str:
        """What image names start with: `127.0.0.1:PORT/name:tag`."""
        return f"127.0.0.1:{self.port}"


def _answers(port: int) -> bool:
    """The registry's API root answers 200 once it serves (`GET /v2/`)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1.0) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _start(executable: str, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A running registry and its port; a port someone took meanwhile is tried again."""
    log = directory / "registry.log"
    for _ in range(3):
        port = free_loopback_port()
        config = directory / "config.yml"
        config.write_text(CONFIG.format(root=directory / "images", port=port))
        with log.open("wb") as output:
            process = subprocess.Popen(
                [executable, "serve", str(config)],
                cwd=directory,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(port):
                return process, port
            time.sleep(0.05)
        stop_group(process)
    pytest.fail(
        f"docker-registry did not answer GET /v2/ within {START_TIMEOUT_S} s on a free "
        f"loopback port; its log says:\n{log.read_text(errors='replace')}"
    )


def _untag(client: Any, prefix: str) -> None:
    """Remove the engine's names of images under `prefix` (this session's registry, gone
    now), so that sessions leave no names behind; an image stays while named otherwise."""
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(prefix):
                client.images.remove(tag)


@pytest.fixture(scope="session", name="registry")
def registry_fixture(docker_engine: Any) -> Iterator[Registry]:
    """The session's image registry; ask for `registry`. Names given to images for it are
    taken off the engine at the end."""
    executable = shutil.which("docker-registry")
    if executable is None:
        pytest.fail(
            "docker-registry is not on PATH; install it with `bash tools/components/registry.sh` "
            "(or `apt-get install docker-registry`), which `make test` runs for you"
        )
    directory = Path(tempfile.mkdtemp(prefix="burla-registry-"))
    try:
        process, port = _start(executable, directory)
        try:
            yield Registry(port)
        finally:
            stop_group(process)
            _untag(docker_engine, f"127.0.0.1:{port}/")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
