"""main_service's connection to a node, both ends, over real loopback TCP."""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryContainerRuntime, MemoryStore
from burla.core import report_wire
from burla.core.clock import ManualClock
from burla.core.link_wire import Assign, CheckHealth, Report, Reset, Standby, read_from_node
from burla.core.models import ContainerSpec, NodeType
from burla.core.worker_wire import Open, Refusal
from burla.services.framing import FrameConnection, message_frame, open_frames, serve_frames
from burla.services.main_service.node_link import NodeLink
from burla.services.node_service.link import MainLink
from burla.services.node_service.node import NodeService

pytestmark = pytest.mark.anyio
SECRET = "cluster-secret"


def idle_node(tmp_path: Path, link: MainLink) -> NodeService:
    """A node that runs no workers: enough to answer for itself."""
    clock = ManualClock(start=1_000.0)
    return NodeService(
        node_id="node-1",
        node_type=NodeType(name="test", cpus=2, ram_gb=4),
        containers=(ContainerSpec(image="test"),),
        runtime=MemoryContainerRuntime(),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        report=link.report,
        clock=clock,
        status_dir=tmp_path,
    )


def listening() -> tuple[socket.socket, int]:
    """A loopback socket that listens, as a node's does, and its port."""
    sock = socket.create_server(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[MainLink, str]]:
    """A node's link, served on a loopback port: (link, address)."""
    link = MainLink(SECRET)
    node = idle_node(tmp_path, link)
    sock, port = listening()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(serve_frames, sock, functools.partial(link.serve, node), tasks)
        yield link, f"127.0.0.1:{port}"
        tasks.cancel_scope.cancel()
    sock.close()


async def raw(address: str) -> FrameConnection:
    host, port = address.rsplit(":", 1)
    return await open_frames(host, int(port))


async def test_a_caller_without_the_secret_is_refused_and_served_nothing(
    served: tuple[MainLink, str],
) -> None:
    _, address = served
    stranger = await raw(address)
    await stranger.send([message_frame(Open("guess")), message_frame(CheckHealth(1))])
    with anyio.fail_after(10):
        refusal = await stranger.receive()
        assert refusal is not None
        refused = read_from_node(refusal[0])
        assert type(refused) is Refusal
        assert "secret" in refused.message
        assert await stranger.receive() is None, "the node answered after refusing"
    await stranger.aclose()


async def test_requests_are_answered_and_reports_arrive_in_order(
    served: tuple[MainLink, str],
) -> None:
    link, address = served
    reports: list[tuple[str, list[list[Any]], bytes]] = []
    lost: list[str] = []
    all_in = anyio.Event()

    async def on_report(node_id: str, events: list[list[Any]], payload: bytes) -> None:
        reports.append((node_id, events, payload))
        if len(reports) == 5:
            all_in.set()

    async def on_lost(node_id: str) -> None:
        lost.append(node_id)

    async with anyio.create_task_group() as tasks:
        main = await NodeLink.connect(
            "node-1", address, SECRET, on_report=on_report, on_lost=on_lost, tasks=tasks
        )
        assert await main.request(CheckHealth())
        no_job = Assign(job={}, workers=1, function_key=None, packages=(), token=None)
        assert not await main.request(no_job), "a request the node could not carry out succeeded"
        for n in range(5):
            line = report_wire.LineReport("job", n, "stdout", "x").to_json()
            await link.report(Report("node-1", [line]), bytes([n]))
        with anyio.fail_after(10):
            await all_in.wait()
        told = [(report_wire.decode_report(events[0]), data) for _, events, data in reports]
        assert told == [
            (report_wire.LineReport("job", n, "stdout", "x"), bytes([n])) for n in range(5)
        ]
        await main.aclose()
        assert not await main.request(CheckHealth())
    assert lost == [], "closing the link on purpose reported the node lost"


async def test_a_node_that_goes_away_is_reported_lost(tmp_path: Path) -> None:
    sock, port = listening()
    lost = anyio.Event()

    async def vanish(connection: FrameConnection) -> None:
        await connection.receive()  # the hello, then the node dies
        await connection.aclose()

    async def on_report(node_id: str, events: list[list[Any]], payload: bytes) -> None:
        raise AssertionError("no report was sent")

    async def on_lost(node_id: str) -> None:
        assert node_id == "node-9"
        lost.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(serve_frames, sock, vanish, tasks)
        main = await NodeLink.connect(
            "node-9", f"127.0.0.1:{port}", SECRET, on_report=on_report, on_lost=on_lost, tasks=tasks
        )
        with anyio.fail_after(10):
            await lost.wait()
        assert not await main.request(CheckHealth())
        tasks.cancel_scope.cancel()
    sock.close()


async def test_a_request_sent_without_waiting_reaches_the_node_before_later_ones(
    tmp_path: Path,
) -> None:
    """main_service resets a node without waiting for the answer (it may be reading that
    node's report), then may give it a job at once: the reset must land first, or it ends
    the job it was given (the same job again, after the node left it on running dry)."""
    link = MainLink(SECRET)
    node = idle_node(tmp_path, link)
    carried_out: list[str] = []

    async def reset(job_id: str | None, *, cancel: bool) -> None:
        carried_out.append(f"reset {job_id}")

    def health() -> dict[str, Any]:
        carried_out.append("health")
        return {"node_id": "node-1", "job_id": None, "workers": 0, "build": "b"}

    node.reset = reset  # type: ignore[method-assign]
    node.health = health  # type: ignore[method-assign]
    sock, port = listening()

    async def on_report(node_id: str, events: list[list[Any]], payload: bytes) -> None:
        pass

    async def on_lost(node_id: str) -> None:
        pass

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(serve_frames, sock, functools.partial(link.serve, node), tasks)
        main = await NodeLink.connect(
            "node-1", f"127.0.0.1:{port}", SECRET, on_report=on_report, on_lost=on_lost, tasks=tasks
        )
        answered = await main.send(Reset("job-1", True))
        assert await main.request(CheckHealth())
        assert await answered()
        assert carried_out == ["reset job-1", "health"]
        assert main._waiting == {}, "every answer waited for was let go"
        await main.aclose()
        tasks.cancel_scope.cancel()
    sock.close()


async def test_a_request_before_the_node_runs_is_refused_and_the_link_serves_on(
    served: tuple[MainLink, str],
) -> None:
    """The served node was never run(): a new standby definition or a job cannot be
    carried out yet, and saying so must not end the connection."""
    _, address = served
    async with anyio.create_task_group() as tasks:
        main = await NodeLink.connect(
            "node-1", address, SECRET, on_report=_no_report, on_lost=_no_loss, tasks=tasks
        )
        containers = (ContainerSpec(image="other").model_dump(mode="json"),)
        assert not await main.request(Standby(specs=containers))
        assert await main.request(CheckHealth()), "the link ended after a refused request"
        await main.aclose()


async def _no_report(node_id: str, events: list[list[Any]], payload: bytes) -> None:
    raise AssertionError("no report was sent")


async def _no_loss(node_id: str) -> None:
    raise AssertionError("the node was reported lost")
