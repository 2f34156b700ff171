"""What only Docker does, on a real dockerd and burla's default image: the real worker
inside a container, CPU pinning through the cpuset cgroup, mounts, Docker's exit codes, ports
shared by every node's containers, and cleanup by label.

Every container a test starts is removed by its runtime's aclose; the session checks that
none labelled with its node ids is left (tests/components/docker.py).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import cloudpickle
import pytest

from burla.backends.docker.image import (
    DEFAULT_IMAGE_REPOSITORY,
    build_default_image,
    default_image_tag,
)
from burla.backends.docker.runtime import NODE_LABEL, DockerRuntime
from burla.core.errors import ConflictError, InvalidRequestError
from burla.core.models import ContainerSpec
from burla.core.protocols import ContainerInfo, Mount
from burla.core.worker_wire import (
    Hello,
    InputItem,
    Inputs,
    JobStart,
    Lines,
    Open,
    Results,
    read_from_worker,
)
from burla.services.container_service.status import read_status
from burla.services.container_service.worker import Connection
from tests.contract.containers import FreePort
from tests.contract.eventually import eventually

pytestmark = pytest.mark.integration

AVAILABLE = sorted(os.sched_getaffinity(0))
SLEEP = "import time; time.sleep(600)"


def mapped(cpuset: set[int]) -> str:
    """Docker's cpuset for virtual CPUs, computed independently of the runtime."""
    return ",".join(str(cpu) for cpu in sorted({AVAILABLE[c % len(AVAILABLE)] for c in cpuset}))


@pytest.fixture
def program(default_image: str) -> Callable[[str], ContainerSpec]:
    """A spec of the default image whose entrypoint runs `source` in its python."""
    return lambda source: ContainerSpec(image=default_image, entrypoint=("python", "-c", source))


@pytest.fixture
async def docker_runtime(
    docker_engine: Any, default_image: str, docker_node_id: str, tmp_path: Path
) -> AsyncIterator[DockerRuntime]:
    runtime = DockerRuntime(docker_node_id, tmp_path, client=docker_engine, stop_grace_s=1)
    try:
        yield runtime
    finally:
        await runtime.aclose()


# The real worker in a container.

WORKER_SECRET = "the-secret-its-node-gave-it"


def _serve_one_job(port: int) -> tuple[dict[int, Any], list[list[Any]], dict[str, Any]]:
    """Drive the worker on `port` as node_service does: one job, two inputs."""

    def double_and_describe(x: int) -> tuple[int, str, list[int], str]:
        # Nested, so cloudpickle ships it by value: the container has no tests package.
        import os
        import sys

        print(f"doubling {x}")
        cpus = sorted(os.sched_getaffinity(0))
        return 2 * x, os.environ["BURLA_CONTAINER_NAME"], cpus, sys.executable

    deadline = time.monotonic() + 60
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    sock.settimeout(60)
    connection = Connection(sock)
    try:
        connection.send([(Open(WORKER_SECRET), b"")])
        hello = connection.receive()
        assert hello is not None
        function = cloudpickle.dumps(double_and_describe)
        payloads = [cloudpickle.dumps((x,)) for x in (3, 4)]
        items = tuple(InputItem(n, len(p), None) for n, p in enumerate(payloads))
        job, inputs = JobStart("j", None, None), Inputs.of("j", items)
        connection.send([(job, function), (inputs, b"".join(payloads))])
        results: dict[int, Any] = {}
        logs: list[tuple[Any, ...]] = []
        while len(results) < 2:
            frame = connection.receive()
            assert frame is not None, "the worker hung up"
            message, payload = read_from_worker(*frame), frame[1]
            if type(message) is Lines:
                logs += [(line.index, line.stream, line.text) for line in message.items]
            else:
                assert type(message) is Results, message
                offset = 0
                for item in message.items:
                    data = payload[offset : offset + item.size]
                    results[item.index] = (item.kind, cloudpickle.loads(data))
                    offset += item.size
        return results, logs, read_from_worker(*hello)
    finally:
        connection.close()


@pytest.mark.anyio
async def test_the_worker_runs_in_a_container_and_answers_on_its_port(
    docker_runtime: DockerRuntime, default_image: str, free_port: FreePort
) -> None:
    port = free_port()
    spec = ContainerSpec(image=default_image)  # the default entrypoint: container_service
    env = {"BURLA_WORKER_SECRET": WORKER_SECRET}
    await docker_runtime.start(spec, name="w", port=port, cpuset=frozenset({1}), env=env)
    try:
        results, logs, hello = await anyio.to_thread.run_sync(_serve_one_job, port)
    except BaseException:
        print(await docker_runtime.logs("w"))
        raise
    assert type(hello) is Hello
    assert results == {
        0: ("ok", (6, "w", [int(mapped({1}))], "/usr/bin/python")),
        1: ("ok", (8, "w", [int(mapped({1}))], "/usr/bin/python")),
    }
    assert sorted(tuple(item) for item in logs) == [
        (0, "stdout", "doubling 3\n"),
        (1, "stdout", "doubling 4\n"),
    ]
    # The status file is in the container's directory, where the node can read it.
    assert read_status(docker_runtime.directory("w") / "status") is None  # idle now


@pytest.mark.anyio
async def test_the_worker_sees_burla_and_its_dependencies_only(
    docker_runtime: DockerRuntime, program: Callable[[str], ContainerSpec], free_port: FreePort
) -> None:
    probe = (
        "import importlib.util as u, sys\n"
        "import burla.client.map, burla.services.container_service.worker, cloudpickle, tblib\n"
        "import httpx, rich\n"
        "sys.exit(0 if u.find_spec('pydantic') is None and u.find_spec('fastapi') is None "
        "else 7)\n"
    )
    await docker_runtime.start(program(probe), name="w", port=free_port(), cpuset=frozenset({0}))
    info = await _exited(docker_runtime, "w")
    assert info.exit_code == 0, await docker_runtime.logs("w")


# Docker-only behaviour.


def test_the_default_image_is_built_once(docker_engine: Any, default_image: str) -> None:
    said: list[str] = []
    assert build_default_image(client=docker_engine, echo=said.append) == default_image
    assert said == [f"{default_image} is already built"]
    assert default_image == default_image_tag()
    assert default_image.startswith(f"{DEFAULT_IMAGE_REPOSITORY}:")


@pytest.mark.anyio
async def test_containers_are_labelled_and_cleaned_up_by_label(
    docker_engine: Any,
    docker_runtime: DockerRuntime,
    docker_node_id: str,
    program: Callable[[str], ContainerSpec],
    free_port: FreePort,
    tmp_path: Path,
) -> None:
    spec = program(SLEEP)
    await docker_runtime.start(spec, name="a", port=free_port(), cpuset=frozenset({0}))
    await docker_runtime.start(spec, name="b", port=free_port(), cpuset=frozenset({1}))
    other_node = DockerRuntime(f"{docker_node_id}x", tmp_path / "x", client=docker_engine)
    await other_node.start(spec, name="a", port=free_port(), cpuset=frozenset({0}))
    try:
        labelled = docker_engine.containers.list(
            filters={"label": f"{NODE_LABEL}={docker_node_id}"}
        )
        assert sorted(c.name for c in labelled) == [f"{docker_node_id}.a", f"{docker_node_id}.b"]

        # A new runtime of the same node sees the containers and removes them by label.
        again = DockerRuntime(docker_node_id, tmp_path, client=docker_engine)
        assert [info.name for info in await again.list()] == ["a", "b"]
        await again.aclose()
        assert await docker_runtime.list() == []
        assert (
            docker_engine.containers.list(
                all=True, filters={"label": f"{NODE_LABEL}={docker_node_id}"}
            )
            == []
        )
        assert [info.name for info in await other_node.list()] == ["a"]
    finally:
        await other_node.aclose()


@pytest.mark.anyio
async def test_cpusets_map_virtual_cpus_onto_the_machine_and_move(
    docker_engine: Any,
    docker_runtime: DockerRuntime,
    program: Callable[[str], ContainerSpec],
    free_port: FreePort,
) -> None:
    count = len(AVAILABLE)
    virtual = frozenset({count, 2 * count + 1})
    info = await docker_runtime.start(program(SLEEP), name="w", port=free_port(), cpuset=virtual)
    assert info.cpuset == virtual
    container = docker_engine.containers.get(docker_runtime.docker_name("w"))
    assert container.attrs["HostConfig"]["CpusetCpus"] == mapped(set(virtual))

    moved = await docker_runtime.set_cpuset("w", frozenset({1}))
    assert moved.cpuset == {1}
    container.reload()
    assert container.attrs["HostConfig"]["CpusetCpus"] == mapped({1})
    assert container.attrs["Config"]["Labels"]["burla.cpuset"] == f"{count},{2 * count + 1}"


@pytest.mark.anyio
async def test_exit_codes_are_dockers(
    docker_runtime: DockerRuntime,
    program: Callable[[str], ContainerSpec],
    default_image: str,
    free_port: FreePort,
) -> None:
    killer = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    await docker_runtime.start(program(killer), name="b", port=free_port(), cpuset=frozenset({0}))
    missing = ContainerSpec(image=default_image, entrypoint=("no-such-program",))
    await docker_runtime.start(missing, name="d", port=free_port(), cpuset=frozenset({0}))
    assert (await _exited(docker_runtime, "b")).exit_code == 128 + 9
    assert (await _exited(docker_runtime, "d")).exit_code == 127  # docker-init's "not found"
    assert "no-such-program" in await docker_runtime.logs("d")
    assert [(info.name, info.running) for info in await docker_runtime.list()] == [
        ("b", False),
        ("d", False),
    ]


@pytest.mark.anyio
async def test_a_port_is_refused_while_any_nodes_container_listens_on_it(
    docker_engine: Any,
    docker_runtime: DockerRuntime,
    docker_node_id: str,
    program: Callable[[str], ContainerSpec],
    free_port: FreePort,
    tmp_path: Path,
) -> None:
    port = free_port()
    await docker_runtime.start(program(SLEEP), name="a", port=port, cpuset=frozenset({0}))
    other_node = DockerRuntime(f"{docker_node_id}x", tmp_path / "x", client=docker_engine)
    with pytest.raises(ConflictError, match=f"port {port}"):
        await other_node.start(program(SLEEP), name="a", port=port, cpuset=frozenset({0}))
    assert await other_node.list() == []
    assert [info.name for info in await docker_runtime.list()] == ["a"]


@pytest.mark.anyio
async def test_env_and_mounts_reach_the_container(
    docker_runtime: DockerRuntime,
    program: Callable[[str], ContainerSpec],
    free_port: FreePort,
    tmp_path: Path,
) -> None:
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    shared.mkdir()
    scratch.mkdir()
    (shared / "given.txt").write_text("from the node")
    check = (
        "import json, os, pathlib\n"
        "given = pathlib.Path('/data/given.txt').read_text()\n"
        "try:\n"
        "    pathlib.Path('/data/new.txt').write_text('x')\n"
        "    read_only = False\n"
        "except OSError:\n"
        "    read_only = True\n"
        "pathlib.Path('/scratch/out.txt').write_text('written')\n"
        "pathlib.Path('inside.txt').write_text('in the container directory')\n"
        "names = ['BURLA_PORT', 'BURLA_CONTAINER_NAME', 'BURLA_CONTAINER_ROOT', 'BURLA_CPUSET',\n"
        "         'EXTRA', 'HOME']\n"
        "report = {name: os.environ[name] for name in names}\n"
        "report.update(given=given, read_only=read_only, cwd=os.getcwd(),\n"
        "              uid=os.getuid(), path=os.environ['PYTHONPATH'].split(':'))\n"
        "pathlib.Path('report.json').write_text(json.dumps(report))\n"
    )
    port = free_port()
    await docker_runtime.start(
        program(check),
        name="w",
        port=port,
        cpuset=frozenset({0, 1}),
        env={"EXTRA": "yes", "PYTHONPATH": "/first"},
        mounts=[Mount(str(shared), "/data"), Mount(str(scratch), "/scratch", read_only=False)],
    )
    info = await _exited(docker_runtime, "w")
    directory = docker_runtime.directory("w")
    assert info.exit_code == 0, await docker_runtime.logs("w")
    report = json.loads((directory / "report.json").read_text())
    assert report == {
        "BURLA_PORT": str(port),
        "BURLA_CONTAINER_NAME": "w",
        "BURLA_CONTAINER_ROOT": str(directory),
        "BURLA_CPUSET": "0,1",
        "EXTRA": "yes",
        "HOME": str(directory),
        "given": "from the node",
        "read_only": True,
        "cwd": str(directory),
        "uid": os.getuid(),
        "path": ["/first", "/opt/burla/worker-packages"],
    }
    assert (scratch / "out.txt").read_text() == "written"
    assert (directory / "inside.txt").exists()
    assert not (shared / "new.txt").exists()


@pytest.mark.anyio
async def test_a_start_that_cannot_work_is_refused_and_leaves_nothing(
    docker_runtime: DockerRuntime,
    program: Callable[[str], ContainerSpec],
    default_image: str,
    free_port: FreePort,
    tmp_path: Path,
) -> None:
    port = free_port()
    start = docker_runtime.start
    with pytest.raises(InvalidRequestError, match="no image 'burla-missing:1'"):
        await start(
            ContainerSpec(image="burla-missing:1"), name="w", port=port, cpuset=frozenset({0})
        )
    with pytest.raises(InvalidRequestError, match="BURLA_PORT"):
        await start(
            program(SLEEP), name="w", port=port, cpuset=frozenset({0}), env={"BURLA_PORT": "1"}
        )
    with pytest.raises(InvalidRequestError, match="BURLA_PARENT_PID"):
        await start(
            program(SLEEP),
            name="w",
            port=port,
            cpuset=frozenset({0}),
            env={"BURLA_PARENT_PID": str(os.getpid())},
        )
    with pytest.raises(InvalidRequestError, match="mount source"):
        await start(
            program(SLEEP),
            name="w",
            port=port,
            cpuset=frozenset({0}),
            mounts=[Mount(str(tmp_path / "absent"), "/data")],
        )
    with pytest.raises(InvalidRequestError, match="overlaps"):
        await start(
            program(SLEEP),
            name="w",
            port=port,
            cpuset=frozenset({0}),
            mounts=[Mount(str(tmp_path), "/opt/burla")],
        )
    assert await docker_runtime.list() == []
    await start(program(SLEEP), name="w", port=port, cpuset=frozenset({0}))
    assert [info.running for info in await docker_runtime.list()] == [True]


async def _exited(runtime: DockerRuntime, name: str) -> ContainerInfo:
    """The container once it has exited."""
    found: list[ContainerInfo] = []

    async def exited() -> bool:
        found[:] = [info for info in await runtime.list() if info.name == name]
        return bool(found) and not found[0].running

    await eventually(exited, timeout_s=30)
    return found[0]


def test_burla_image_build_reports_the_built_image(default_image: str) -> None:
    from click.testing import CliRunner

    from burla.cli import cli

    result = CliRunner().invoke(cli, ["image", "build"])
    assert result.exit_code == 0, result.output
    assert f"{default_image} is already built" in result.output
