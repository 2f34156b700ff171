"""Connect to the Docker engine, turning a missing SDK or daemon into a burla error that
says what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

from burla.core.errors import BackendError

if TYPE_CHECKING:
    import docker

MAX_CONNECTIONS = 64
"""Connections kept to dockerd: a node starts one container per CPU at once."""


def connect(base_url: str | None = None) -> docker.DockerClient:
    """A client of the engine at `base_url` (default: $DOCKER_HOST, else the local socket),
    checked to answer."""
    try:
        import docker
        import docker.errors
    except ImportError as error:
        raise BackendError(
            "the Docker backend needs the docker SDK: pip install 'burla[docker]'"
        ) from error
    try:
        if base_url is None:
            client = docker.from_env(max_pool_size=MAX_CONNECTIONS)
        else:
            client = docker.DockerClient(base_url=base_url, max_pool_size=MAX_CONNECTIONS)
        client.ping()
    except docker.errors.DockerException as error:
        raise BackendError(
            f"could not reach the Docker engine ({error}); start dockerd, e.g. "
            "`dockerd --bridge=none --iptables=false`, or set DOCKER_HOST"
        ) from error
    return client
