"""A Docker engine and burla's default image for the tests, started and built on demand.

`docker_engine` uses the engine that answers on the default socket, or starts dockerd
(no bridge, no iptables: containers use the host network) in its own process group and
stops it at the end of the session. `nodes_docker_engine` is a second engine, with an
empty data root of its own, for a cloud cluster's nodes: it has no image until they pull
one. `default_image` builds the default image once per machine; it stays in the engine's
data root under a tag that hashes its recipe, so later sessions reuse it.
`docker_node_id` gives each test its own node id: every container a test starts is
labelled with it, and the session removes (and reports) any left over.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from burla.backends.docker.client import connect
from burla.backends.docker.image import build_default_image
from burla.backends.docker.runtime import NODE_LABEL
from burla.core.errors import BackendError

DATA_ROOT = Path("/var/lib/burla-docker")
"""Where a dockerd started here keeps images, so the default image survives the session."""

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
SESSION = f"t{uuid.uuid4().hex[:8]}"
"""Prefix of every node id this session uses, so its cleanup touches no one else's."""

_node_numbers = itertools.count()


@pytest.fixture(scope="session", name="docker_engine")
def docker_engine_fixture() -> Iterator[Any]:
    """A docker.DockerClient of a running engine; every container this session labelled
    is gone when it ends."""
    with contextlib.ExitStack() as stack:
        try:
            client = connect()
        except BackendError:
            client = stack.enter_context(_dockerd(DATA_ROOT))
        stack.callback(client.close)
        yield client
        _remove_leftovers(client)


@dataclass(frozen=True)
class NodesEngine:
    """A Docker engine of its own for a cloud cluster's nodes."""

    url: str
    """What DOCKER_HOST names it by."""
    client: Any


@pytest.fixture(scope="session", name="nodes_docker_engine")
def nodes_docker_engine_fixture(docker_engine: Any) -> Iterator[NodesEngine]:
    """A second engine, started empty for this session (the default one must run first:
    both share containerd's shim binaries but nothing else)."""
    root = Path(tempfile.mkdtemp(prefix="burla-nodes-dockerd-"))
    socket_url = f"unix://{root}/docker.sock"
    options = [f"--host={socket_url}", f"--exec-root={root}/exec", f"--pidfile={root}/pid"]
    try:
        with _dockerd(root / "data", options, socket_url) as client:
            yield NodesEngine(socket_url, client)
            _remove_containers(client)
    finally:
        _unmount_under(root)  # dockerd may leave its network namespace mounted
        shutil.rmtree(root)


@pytest.fixture(scope="session", name="default_image")
def default_image_fixture(docker_engine: Any) -> str:
    """The default image's tag, built first if the engine does not have it (about a minute)."""
    return build_default_image(client=docker_engine, echo=lambda line: None)


@pytest.fixture(scope="session", name="trixie_image")
def trixie_image_fixture(docker_engine: Any) -> str:
    """The default image of Python 3.13 (Debian trixie), built first if the engine does
    not have it (about a minute)."""
    return build_default_image(python="3.13", client=docker_engine, echo=lambda line: None)


@pytest.fixture(name="docker_node_id")
def docker_node_id_fixture() -> str:
    """A node id no other test or session uses."""
    return f"{SESSION}-{next(_node_numbers)}"


@contextlib.contextmanager
def _dockerd(data_root: Path, options: Sequence[str] = (), url: str | None = None) -> Iterator[Any]:
    """dockerd keeping its images in `data_root`, in its own process group, stopped by its
    process id and then the group; yields a client of it (at `url`) once it answers."""
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is not installed: run tools/components/docker.sh (as root)")
    data_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="burla-dockerd-") as log_dir:
        log_path = Path(log_dir, "dockerd.log")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [
                    "dockerd",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-masq=false",
                    f"--data-root={data_root}",
                    *options,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            yield _wait_for_engine(process, log_path, url)
        finally:
            _stop(process)


def _wait_for_engine(process: subprocess.Popen[bytes], log_path: Path, url: str | None) -> Any:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            return connect(url)
        except BackendError:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
                pytest.fail(f"dockerd did not start; its log ends:\n{tail}")
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)  # dockerd stops its containers and containerd
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever it left in its group
    process.wait()


def _unmount_under(root: Path) -> None:
    """Unmount whatever is still mounted inside `root`, deepest first."""
    with open("/proc/self/mountinfo") as table:
        points = [line.split()[4] for line in table]
    for point in sorted((p for p in points if Path(p).is_relative_to(root)), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=True)


def _remove_containers(client: Any) -> None:
    """Remove every container of an engine this session started for itself."""
    import docker.errors

    for container in client.containers.list(all=True, sparse=True):
        with contextlib.suppress(docker.errors.NotFound):  # gone since the list
            container.remove(force=True)


def _remove_leftovers(client: Any) -> None:
    """Remove this session's containers; fail if a test left any behind."""
    left = [
        container
        for container in client.containers.list(all=True, filters={"label": NODE_LABEL})
        if container.labels[NODE_LABEL].startswith(f"{SESSION}-")
    ]
    for container in left:
        container.remove(force=True)
    assert not left, f"tests left Docker containers behind: {[c.name for c in left]}"
