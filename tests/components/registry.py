"""A real image registry for the tests: the reference Distribution registry (Debian's
docker-registry), one per test session on a free loopback port, standing in for Artifact
Registry (`google_registry` asks for a login as Artifact Registry does).

It keeps its images in a temporary directory and runs in its own process group; the fixture
stops it by PID and removes the directory. Docker pushes to and pulls from a registry on
127.0.0.0/8 over plain HTTP without any setting. A machine without docker-registry fails
the tests that need it, saying how to install it.
"""

from __future__ import annotations

import contextlib
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

import bcrypt
import pytest

from burla.backends.docker.registry_login import TOKEN_USER
from tests.components.redis import free_loopback_port, stop_group
from tests.fakes.compute_api import ACCESS_TOKEN

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
AUTH = """auth:
  htpasswd:
    realm: burla-test
    path: {htpasswd}
"""


@dataclass(frozen=True)
class Registry:
    port: int
    login: dict[str, str] | None = None
    """The user and password it takes (Docker's auth_config), if it asks for one."""

    @property
    def host(self) -> str:
        """What image names start with: `127.0.0.1:PORT/name:tag`."""
        return f"127.0.0.1:{self.port}"


def _answers(port: int) -> bool:
    """The registry's API root answers once it serves (`GET /v2/`: 200, or 401 when it
    asks for a login)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1.0) as answer:
            return bool(answer.status == 200)
    except urllib.error.HTTPError as error:
        return error.code == 401
    except (urllib.error.URLError, OSError):
        return False


def _start(directory: Path, auth: str) -> tuple[subprocess.Popen[bytes], int]:
    """A running registry and its port; a port someone took meanwhile is tried again."""
    executable = shutil.which("docker-registry")
    if executable is None:
        pytest.fail(
            "docker-registry is not on PATH; install it with `bash tools/components/registry.sh` "
            "(or `apt-get install docker-registry`), which `make test` runs for you"
        )
    log = directory / "registry.log"
    for _ in range(3):
        port = free_loopback_port()
        config = directory / "config.yml"
        config.write_text(CONFIG.format(root=directory / "images", port=port) + auth)
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


@contextlib.contextmanager
def _registry(docker_engine: Any, login: dict[str, str] | None) -> Iterator[Registry]:
    """A registry that asks for `login`, if given; names given to images for it are taken
    off the engine at the end."""
    directory = Path(tempfile.mkdtemp(prefix="burla-registry-"))
    auth = ""
    if login is not None:
        # Few rounds: the registry checks the password at every request of a push or pull.
        hashed = bcrypt.hashpw(login["password"].encode(), bcrypt.gensalt(rounds=4)).decode()
        (directory / "htpasswd").write_text(f"{login['username']}:{hashed}\n")
        auth = AUTH.format(htpasswd=directory / "htpasswd")
    try:
        process, port = _start(directory, auth)
        try:
            yield Registry(port, login)
        finally:
            stop_group(process)
            _untag(docker_engine, f"127.0.0.1:{port}/")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session", name="registry")
def registry_fixture(docker_engine: Any) -> Iterator[Registry]:
    """The session's image registry, open to all; ask for `registry`."""
    with _registry(docker_engine, None) as registry:
        yield registry


@pytest.fixture(scope="session", name="google_registry")
def google_registry_fixture(docker_engine: Any) -> Iterator[Registry]:
    """A registry that, like Artifact Registry, takes a Google access token as the
    password of `oauth2accesstoken`: the one the fake Compute API's metadata server and
    token endpoint give."""
    login = {"username": TOKEN_USER, "password": ACCESS_TOKEN}
    with _registry(docker_engine, login) as registry:
        yield registry
