"""Workers of another Python version: the real container_service in Python 3.13's default
image (Debian trixie) beside 3.11's (bookworm), with the same mounted worker code."""

from __future__ import annotations

import platform
import socket
import time
from typing import Any

import anyio.to_thread
import cloudpickle
import pytest

from burla.backends.docker.custom import DockerImages
from burla.backends.docker.runtime import DockerRuntime
from burla.core.models import ContainerSpec
from burla.core.worker_wire import InputItem, Inputs, JobStart, Open, Results, read_from_worker
from burla.services.container_service.worker import Connection
from tests.contract.containers import FreePort

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

SECRET = "the-secret-its-node-gave-it"


def python_of_worker(port: int) -> str:
    """Run `platform.python_version()` as one job's one input on the worker at `port`.

    The function is pickled by reference (a standard-library function), so it loads in
    any Python: what comes back is the worker's own version."""
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
        connection.send([(Open(SECRET), b"")])
        assert connection.receive() is not None  # hello
        arguments = cloudpickle.dumps(())
        job = JobStart("j", None, None)
        inputs = Inputs.of("j", [InputItem(0, len(arguments), None)])
        connection.send([(job, cloudpickle.dumps(platform.python_version)), (inputs, arguments)])
        while True:
            frame = connection.receive()
            assert frame is not None, "the worker hung up"
            message = read_from_worker(*frame)
            if type(message) is Results:
                [item] = message.items
                assert item.kind == "ok", cloudpickle.loads(frame[1])
                version: str = cloudpickle.loads(frame[1][: item.size])
                return version
    finally:
        connection.close()


async def test_workers_of_two_python_versions_run_side_by_side(
    docker_engine: Any,
    default_image: str,
    trixie_image: str,
    docker_runtime: DockerRuntime,
    free_port: FreePort,
) -> None:
    images = DockerImages(docker_engine)
    assert await images.check(default_image) == "3.11"
    assert await images.check(trixie_image) == "3.13"
    env = {"BURLA_WORKER_SECRET": SECRET}
    ports = {}
    for name, image in (("py311", default_image), ("py313", trixie_image)):
        ports[name] = free_port()
        spec = ContainerSpec(image=image)  # the default entrypoint: container_service
        await docker_runtime.start(
            spec, name=name, port=ports[name], cpuset=frozenset({0}), env=env
        )
    try:
        old = await anyio.to_thread.run_sync(python_of_worker, ports["py311"])
        new = await anyio.to_thread.run_sync(python_of_worker, ports["py313"])
    except BaseException:
        for name in ports:
            print(await docker_runtime.logs(name))
        raise
    assert old.startswith("3.11.")
    assert new.startswith("3.13.")
