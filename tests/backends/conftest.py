"""The backend-specific tests use the contract bindings' shared fixtures too, and a node's
Docker runtime on the session's engine."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from burla.backends.docker.runtime import DockerRuntime
from tests.contract.conftest import free_port

__all__ = ["docker_runtime", "free_port"]


@pytest.fixture
async def docker_runtime(
    docker_engine: Any, docker_node_id: str, tmp_path: Path
) -> AsyncIterator[DockerRuntime]:
    """A node's runtime on the session's Docker engine; its containers go when the test ends."""
    runtime = DockerRuntime(docker_node_id, tmp_path, client=docker_engine, stop_grace_s=1)
    try:
        yield runtime
    finally:
        await runtime.aclose()
