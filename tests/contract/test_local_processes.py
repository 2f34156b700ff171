"""The compute and container contracts bound to the local backend: node_service processes
(tests/backends/fake_node.py stands in for it) and worker processes."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from burla.backends.local.compute import LocalComputeProvider
from burla.backends.local.containers import LocalContainerRuntime
from tests.backends.local_processes import IMAGE, NODE_COMMAND, SLEEPER, boot, node_pid, program
from tests.contract.compute import ComputeProviderContract, ComputeUnderTest
from tests.contract.containers import ContainerRuntimeContract, RuntimeUnderTest, has_exited
from tests.contract.eventually import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def compute_under_test(anyio_backend: str, tmp_path: Path) -> AsyncIterator[ComputeUnderTest]:
    compute = LocalComputeProvider(tmp_path, NODE_COMMAND)

    async def fail(node_id: str) -> None:
        os.kill(node_pid(compute, node_id), signal.SIGKILL)

    try:
        yield ComputeUnderTest(compute, boot, boot_timeout_s=10.0, fail=fail)
    finally:
        await compute.aclose()


@pytest.fixture
async def runtime_under_test(anyio_backend: str, tmp_path: Path) -> AsyncIterator[RuntimeUnderTest]:
    runtime = LocalContainerRuntime(tmp_path, {IMAGE: sys.executable})

    async def start_exiting(name: str, port: int, exit_code: int) -> None:
        exiting = program(f"raise SystemExit({exit_code})")
        await runtime.start(exiting, name=name, port=port, cpuset=frozenset({0}))
        await eventually(lambda: has_exited(runtime, name))

    try:
        yield RuntimeUnderTest(runtime, SLEEPER, start_exiting)
    finally:
        await runtime.aclose()


class TestLocalComputeProvider(ComputeProviderContract): ...


class TestLocalContainerRuntime(ContainerRuntimeContract): ...
