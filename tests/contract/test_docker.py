"""The container contract bound to DockerRuntime on a real dockerd and burla's default
image. Every container a test starts is removed by the runtime's aclose; the session checks
that none labelled with its node ids is left (tests/components/docker.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from burla.backends.docker.runtime import DockerRuntime
from burla.core.models import ContainerSpec
from tests.contract.containers import ContainerRuntimeContract, RuntimeUnderTest, has_exited
from tests.contract.eventually import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def runtime_under_test(
    anyio_backend: str, docker_engine: Any, default_image: str, docker_node_id: str, tmp_path: Path
) -> AsyncIterator[RuntimeUnderTest]:
    runtime = DockerRuntime(docker_node_id, tmp_path, client=docker_engine, stop_grace_s=1)

    def program(source: str) -> ContainerSpec:
        return ContainerSpec(image=default_image, entrypoint=("python", "-c", source))

    async def start_exiting(name: str, port: int, exit_code: int) -> None:
        exiting = program(f"raise SystemExit({exit_code})")
        await runtime.start(exiting, name=name, port=port, cpuset=frozenset({0}))
        await eventually(lambda: has_exited(runtime, name), timeout_s=30)

    try:
        yield RuntimeUnderTest(runtime, program("import time; time.sleep(600)"), start_exiting)
    finally:
        await runtime.aclose()


class TestDockerContainerRuntime(ContainerRuntimeContract): ...
