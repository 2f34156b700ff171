"""ContainerRuntimeContract: what every ContainerRuntime backend must do.

A backend binds it with one fixture, `runtime_under_test`, that gives a RuntimeUnderTest,
and one class line: `class TestDockerContainerRuntime(ContainerRuntimeContract): ...`.
Ports come from the shared `free_port` fixture (conftest.py). The tests pin to CPUs 0 and 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from burla.core.errors import ConflictError, InvalidRequestError, NotFoundError
from burla.core.models import ContainerSpec
from burla.core.protocols import ContainerInfo, ContainerRuntime

FreePort = Callable[[], int]
StartExiting = Callable[[str, int, int], Awaitable[None]]


@dataclass(frozen=True)
class RuntimeUnderTest:
    runtime: ContainerRuntime
    """A runtime with no containers; the binding stops what the test started."""
    spec: ContainerSpec
    """A container the runtime can really start, that runs until it is stopped."""
    start_exiting: StartExiting
    """`(name, port, exit_code)`: start a container that ends by itself with `exit_code`
    (as a worker that crashes does), and return once the runtime lists it as exited."""


async def has_exited(runtime: ContainerRuntime, name: str) -> bool:
    """Whether `runtime` lists container `name` as no longer running."""
    return any(info.name == name and not info.running for info in await runtime.list())


def _running(containers: list[ContainerInfo]) -> list[str]:
    return [info.name for info in containers if info.running]


@pytest.mark.anyio
class ContainerRuntimeContract:
    @pytest.fixture
    def runtime(self, runtime_under_test: RuntimeUnderTest) -> ContainerRuntime:
        return runtime_under_test.runtime

    @pytest.fixture
    def spec(self, runtime_under_test: RuntimeUnderTest) -> ContainerSpec:
        return runtime_under_test.spec

    @pytest.fixture
    def start_exiting(self, runtime_under_test: RuntimeUnderTest) -> StartExiting:
        return runtime_under_test.start_exiting

    async def test_start_and_list(
        self, runtime: ContainerRuntime, spec: ContainerSpec, free_port: FreePort
    ) -> None:
        port = free_port()
        info = await runtime.start(spec, name="worker-0", port=port, cpuset=frozenset({0}))
        expected = ContainerInfo(
            name="worker-0", image=spec.image, port=port, cpuset=frozenset({0})
        )
        assert info == expected
        assert await runtime.list() == [expected]

    async def test_duplicate_name_conflicts(
        self, runtime: ContainerRuntime, spec: ContainerSpec, free_port: FreePort
    ) -> None:
        await runtime.start(spec, name="worker-0", port=free_port(), cpuset=frozenset({0}))
        with pytest.raises(ConflictError, match="worker-0"):
            await runtime.start(spec, name="worker-0", port=free_port(), cpuset=frozenset({1}))
        assert _running(await runtime.list()) == ["worker-0"]

    async def test_set_cpuset(
        self, runtime: ContainerRuntime, spec: ContainerSpec, free_port: FreePort
    ) -> None:
        await runtime.start(spec, name="worker-0", port=free_port(), cpuset=frozenset({0}))
        updated = await runtime.set_cpuset("worker-0", frozenset({0, 1}))
        assert updated.cpuset == {0, 1}
        [listed] = await runtime.list()
        assert listed.cpuset == {0, 1}
        assert listed.running

    async def test_set_memory(
        self, runtime: ContainerRuntime, spec: ContainerSpec, free_port: FreePort
    ) -> None:
        await runtime.start(spec, name="worker-0", port=free_port(), cpuset=frozenset({0}))
        updated = await runtime.set_memory("worker-0", 512 << 20)
        assert updated.memory_limit == 512 << 20
        [listed] = await runtime.list()
        assert (listed.memory_limit, listed.running, listed.out_of_memory) == (
            512 << 20,
            True,
            False,
        )
        assert (await runtime.set_memory("worker-0", None)).memory_limit is None
        with pytest.raises(InvalidRequestError, match="positive"):
            await runtime.set_memory("worker-0", 0)
        with pytest.raises(NotFoundError, match="worker-never"):
            await runtime.set_memory("worker-never", 1 << 30)

    async def test_stop(
        self, runtime: ContainerRuntime, spec: ContainerSpec, free_port: FreePort
    ) -> None:
        await runtime.start(spec, name="worker-0", port=free_port(), cpuset=frozenset({0}))
        await runtime.start(spec, name="worker-1", port=free_port(), cpuset=frozenset({1}))
        assert await runtime.stop("worker-0") is True
        assert _running(await runtime.list()) == ["worker-1"]
        assert await runtime.stop("worker-0") is False

    async def test_stop_unknown_is_false(self, runtime: ContainerRuntime) -> None:
        assert await runtime.stop("worker-never") is False

    async def test_set_cpuset_unknown_raises_not_found(self, runtime: ContainerRuntime) -> None:
        with pytest.raises(NotFoundError, match="worker-never"):
            await runtime.set_cpuset("worker-never", frozenset({0}))

    async def test_containers_on_different_ports_coexist(
        self, runtime: ContainerRuntime, spec: ContainerSpec, free_port: FreePort
    ) -> None:
        first, second = free_port(), free_port()
        assert first != second
        await runtime.start(spec, name="worker-b", port=first, cpuset=frozenset({0}))
        await runtime.start(spec, name="worker-a", port=second, cpuset=frozenset({1}))
        listed = await runtime.list()
        assert [(info.name, info.port, info.running) for info in listed] == [
            ("worker-a", second, True),
            ("worker-b", first, True),
        ]

    async def test_a_port_in_use_is_refused(
        self, runtime: ContainerRuntime, spec: ContainerSpec, free_port: FreePort
    ) -> None:
        port = free_port()
        await runtime.start(spec, name="worker-0", port=port, cpuset=frozenset({0}))
        with pytest.raises(ConflictError, match=f"port {port}.*'worker-0'"):
            await runtime.start(spec, name="worker-1", port=port, cpuset=frozenset({1}))
        assert _running(await runtime.list()) == ["worker-0"]

    async def test_a_container_needs_a_cpu(
        self, runtime: ContainerRuntime, spec: ContainerSpec, free_port: FreePort
    ) -> None:
        with pytest.raises(InvalidRequestError, match="cpuset"):
            await runtime.start(spec, name="worker-0", port=free_port(), cpuset=frozenset())
        assert await runtime.list() == []
        await runtime.start(spec, name="worker-0", port=free_port(), cpuset=frozenset({0}))
        with pytest.raises(InvalidRequestError, match="cpuset"):
            await runtime.set_cpuset("worker-0", frozenset())
        [info] = await runtime.list()
        assert (info.cpuset, info.running) == (frozenset({0}), True)

    async def test_an_exited_container_is_listed_with_its_code_and_frees_its_port(
        self,
        runtime: ContainerRuntime,
        spec: ContainerSpec,
        free_port: FreePort,
        start_exiting: StartExiting,
    ) -> None:
        port = free_port()
        await start_exiting("worker-0", port, 3)
        [exited] = await runtime.list()
        assert (exited.name, exited.running, exited.exit_code) == ("worker-0", False, 3)
        await runtime.start(spec, name="worker-1", port=port, cpuset=frozenset({0}))
        assert [(info.name, info.running) for info in await runtime.list()] == [
            ("worker-0", False),
            ("worker-1", True),
        ]
        assert await runtime.stop("worker-0") is True
        assert [info.name for info in await runtime.list()] == ["worker-1"]
