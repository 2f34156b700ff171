"""Connect to the Docker engine, turning a missing SDK or daemon into a burla error that
says what to do."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from burla.core.errors import BackendError

if TYPE_CHECKING:
    import docker

DEFAULT_URL = "unix:///var/run/docker.sock"

MAX_CONNECTIONS = 64
"""Connections kept to dockerd: a node starts one container per CPU at once."""

API_VERSION = "1.41"
"""Docker 20.10's API (Debian bookworm's docker.io), which newer engines still speak and
which has all the runtime uses. Fixed rather than negotiated, since negotiating contacts the
engine before there is a client to close should it fail."""

_PROBE_TIMEOUT_S = 5.0


def connect(base_url: str | None = None) -> docker.DockerClient:
    """A client of the engine at `base_url` (default: $DOCKER_HOST, else the local socket),
    checked to answer."""
    try:
        import docker
        import docker.errors
        import requests
    except ImportError as error:
        raise BackendError(
            "the Docker backend needs the docker SDK: pip install 'burla-cluster[docker]'"
        ) from error
    url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_URL
    if url.startswith("unix://"):
        # Probed with a socket of our own first: the SDK leaks one when nobody listens.
        _probe(url.removeprefix("unix://"))
    options = {"version": API_VERSION, "max_pool_size": MAX_CONNECTIONS}
    try:
        if base_url is None:
            client = docker.from_env(**options)
        else:
            client = docker.DockerClient(base_url=base_url, **options)
    except docker.errors.DockerException as error:
        raise BackendError(f"could not make a Docker client: {error}; check DOCKER_HOST") from error
    try:
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as error:
        client.close()
        raise _unreachable(url, error) from error
    return client


def _probe(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(_PROBE_TIMEOUT_S)
        try:
            probe.connect(path)
        except OSError as error:
            raise _unreachable(f"unix://{path}", error) from error


def _unreachable(url: str, error: Exception) -> BackendError:
    return BackendError(
        f"could not reach the Docker engine at {url} ({error}); start dockerd, e.g. "
        "`dockerd --bridge=none --iptables=false`, or set DOCKER_HOST"
    )
