"""Garbage on burla's framed protocols: node_service's link from main_service, main_service's
reader of a node's reports, and a worker's connection from its node. Each answers with a
clear refusal or error (or hangs up that one connection), never hangs, and keeps serving.

The services run for real on loopback, in an event loop of their own (a blocking portal);
hypothesis drives them from the test's thread with plain sockets.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core import wire
from burla.core.clock import WallClock
from burla.core.link_wire import CheckHealth, NodeHealth, Reply, read_from_node
from burla.core.models import ClusterConfig, NodeType
from burla.core.worker_wire import Open, Refusal, Results
from burla.release import build_id
from burla.services.framing import serve_frames
from burla.services.main_service.node_link import NodeLink
from burla.services.main_service.service import MainService
from burla.services.node_service.link import MainLink
from tests.services.test_container_service import SECRET as WORKER_SECRET
from tests.services.test_container_service import Node, free_port
from tests.services.test_node_link import SECRET, idle_node
from tests.strategies import frame_bytes, garbage_headers, json_values

pytestmark = pytest.mark.integration
TIMEOUT_S = 10.0
EXAMPLES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NODE_TAGS = ("assign", "standby", "reset", "kill_worker", "health", "open", "report", "reply")
WORKER_TAGS = ("job", "inputs", "end_job", "hello", "open", "results")


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as portal:
        yield portal


def frames_until_hangup(port: int, data: bytes) -> list[tuple[Any, bytes]]:
    """Send `data`, close our side, and read every frame the other end sends until it
    hangs up (which it must, within TIMEOUT_S)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(1 << 16):
                received += chunk
    return list(wire.decode_all(received))


# node_service's link ----------------------------------------------------------------------
@contextlib.asynccontextmanager
async def served_node(root: Path) -> AsyncIterator[int]:
    link = MainLink(SECRET)
    node = idle_node(root, link)
    with socket.create_server(("127.0.0.1", 0)) as sock:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(serve_frames, sock, functools.partial(link.serve, node), tasks)
            yield sock.getsockname()[1]
            tasks.cancel_scope.cancel()


@pytest.fixture(scope="module")
def node_port(portal: BlockingPortal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with portal.wrap_async_context_manager(served_node(tmp_path_factory.mktemp("node"))) as port:
        yield port


HELLO = frame_bytes(Open(SECRET).to_json(), b"")


def assert_node_serves(port: int) -> None:
    [(reply, _)] = frames_until_hangup(port, HELLO + frame_bytes(CheckHealth(7).to_json(), b""))
    assert read_from_node(reply) == NodeHealth(7, "node-1", None, 0, build_id())


@EXAMPLES
@given(garbage=st.binary(max_size=300))
def test_bytes_before_the_secret_are_refused(node_port: int, garbage: bytes) -> None:
    answers = frames_until_hangup(node_port, garbage)
    assert [type(read_from_node(header)) for header, _ in answers] in ([], [Refusal])
    assert_node_serves(node_port)


node_requests = st.builds(
    lambda tag, rest: [tag, *rest], st.sampled_from(NODE_TAGS), st.lists(json_values, max_size=6)
)


@EXAMPLES
@given(
    frames=st.lists(
        st.tuples(node_requests | garbage_headers(NODE_TAGS), st.binary(max_size=64)), max_size=6
    )
)
def test_every_request_that_makes_no_sense_is_answered_with_an_error(
    node_port: int, frames: list[tuple[Any, bytes]]
) -> None:
    data = HELLO + b"".join(frame_bytes(header, payload) for header, payload in frames)
    answers = frames_until_hangup(node_port, data)
    assert len(answers) == len(frames), "a request went unanswered"
    for (request, _), (raw, _) in zip(frames, answers, strict=True):
        reply = read_from_node(raw)
        assert type(reply) in (Reply, NodeHealth)
        harmless = isinstance(request, list) and request[:1] in (["health"], ["kill_worker"])
        if type(reply) is Reply and not harmless:
            assert reply.error is not None, reply
            assert "Error" in reply.error, reply
    assert_node_serves(node_port)


@EXAMPLES
@given(garbage=st.binary(max_size=300))
def test_bytes_that_are_no_frames_after_the_secret_end_that_connection(
    node_port: int, garbage: bytes
) -> None:
    answers = frames_until_hangup(node_port, HELLO + garbage)
    assert all(type(read_from_node(h)) in (Reply, NodeHealth, Refusal) for h, _ in answers)
    assert_node_serves(node_port)


def test_a_frame_over_the_size_limit_is_refused_unread(node_port: int) -> None:
    lie = (8).to_bytes(4, "big") + (4 << 30 - 1).to_bytes(4, "big") + b'{"op":1}'
    [(refusal, _)] = frames_until_hangup(node_port, HELLO + lie)
    assert type(read_from_node(refusal)) is Refusal
    assert "BURLA_MAX_FRAME_MB" in read_from_node(refusal).message
    assert_node_serves(node_port)


# main_service's reader of a node's reports ---------------------------------------------------
JOB = "job-fuzzed"


@contextlib.asynccontextmanager
async def main_service() -> AsyncIterator[tuple[MainService, TaskGroup]]:
    clock = WallClock()
    service = MainService(
        config=ClusterConfig(node_types=(NodeType(name="n2", cpus=2, ram_gb=8),)),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token=SECRET,
    )
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        spec = {"n_inputs": 3, "func_cpu": 1, "func_ram": 1}
        items = [(str(n), b"\x00input") for n in range(3)]
        await service.submit(spec, b"function", None, items, JOB, [])
        yield service, tasks
        tasks.cancel_scope.cancel()


@pytest.fixture(scope="module")
def main(portal: BlockingPortal) -> Iterator[tuple[MainService, TaskGroup]]:
    with portal.wrap_async_context_manager(main_service()) as running:
        yield running


events = st.lists(
    json_values
    | st.builds(
        lambda kind, rest: [kind, JOB, *rest],
        st.sampled_from(["claimed", "finished", "printed", "died", "timed_out", "job_error"]),
        st.lists(json_values, max_size=5),
    ),
    max_size=5,
)
reports = st.builds(lambda evs, node_id: ["report", node_id, evs], events, json_values)
node_frames = st.lists(
    st.tuples(
        reports | node_requests | garbage_headers(("report", "reply", "refused")),
        st.binary(max_size=32),
    ),
    max_size=5,
)


@EXAMPLES
@given(garbage=st.one_of(st.binary(max_size=300), node_frames))
def test_a_node_sending_garbage_is_dropped_and_main_service_goes_on(
    portal: BlockingPortal, main: tuple[MainService, TaskGroup], garbage: Any
) -> None:
    service, tasks = main
    data = garbage if isinstance(garbage, bytes) else b"".join(frame_bytes(*f) for f in garbage)
    lost = portal.call(anyio.Event)

    async def on_lost(node_id: str) -> None:
        lost.set()

    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(TIMEOUT_S)
        address = f"127.0.0.1:{server.getsockname()[1]}"
        connect = functools.partial(
            NodeLink.connect, on_report=service.report, on_lost=on_lost, tasks=tasks
        )
        link = portal.call(connect, "node-fuzz", address, SECRET)
        fake_node, _ = server.accept()
        with fake_node:
            fake_node.settimeout(TIMEOUT_S)
            assert fake_node.recv(1 << 16)  # main_service's hello
            fake_node.sendall(data)
    portal.call(_within_timeout, lost.wait)  # the node's connection ends, and is noticed
    assert link.closed
    assert not tasks.cancel_scope.cancel_called, "a task of main_service failed"
    assert portal.call(_alive, tasks)


async def _within_timeout(wait: Any) -> None:
    with anyio.fail_after(TIMEOUT_S):
        await wait()


async def _alive(tasks: TaskGroup) -> bool:
    """main_service's task group still starts and runs tasks."""
    ran = anyio.Event()

    async def run() -> None:
        ran.set()

    tasks.start_soon(run)
    await _within_timeout(ran.wait)
    return True


# A worker's connection from its node -----------------------------------------------------
@contextlib.contextmanager
def worker_process(root: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {
        **os.environ,
        "BURLA_PORT": str(port),
        "BURLA_CONTAINER_ROOT": str(root),
        "BURLA_WORKER_SECRET": WORKER_SECRET,
    }
    process = subprocess.Popen([sys.executable, "-m", "burla.services.container_service"], env=env)
    try:
        yield process, port
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("worker")
    with worker_process(root) as (_, port):
        node = Node(port, root)
        try:
            yield node
        finally:
            node.connection.close()


def double(x: int) -> int:
    return 2 * x


worker_messages = st.builds(
    lambda tag, rest: [tag, *rest], st.sampled_from(WORKER_TAGS), st.lists(json_values, max_size=4)
)


@EXAMPLES
@given(
    frames=st.lists(
        st.tuples(worker_messages | garbage_headers(WORKER_TAGS), st.binary(max_size=64)),
        max_size=6,
    )
)
def test_a_worker_refuses_frames_that_make_no_sense_and_goes_on(
    worker: Node, frames: list[tuple[Any, bytes]]
) -> None:
    worker.connection._sock.sendall(wire.encode_many(frames))
    worker.job(double, job_id="job-after-garbage")
    worker.inputs([(21,)], job_id="job-after-garbage")
    refusals = 0
    while True:
        heard = worker.receive()
        assert heard is not None, "the worker hung up"
        message, _ = heard
        if type(message) is Refusal:
            refusals += 1
            assert message.message
        if type(message) is Results and message.job_id == "job-after-garbage":
            assert [(item.index, item.kind) for item in message.items] == [(0, "ok")]
            break
    not_for_a_worker = sum(
        1
        for header, _ in frames
        if not (isinstance(header, list) and header and header[0] in ("job", "inputs", "end_job"))
    )
    assert refusals >= not_for_a_worker


@settings(max_examples=15, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=200))
def test_a_worker_sent_bytes_that_are_no_frames_hangs_up_and_exits(
    tmp_path_factory: pytest.TempPathFactory, garbage: bytes
) -> None:
    with worker_process(tmp_path_factory.mktemp("worker")) as (process, port):
        node = Node(port, Path())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            node.connection._sock.sendall(garbage)
            node.connection._sock.shutdown(socket.SHUT_WR)
        while (frame := node.connection.receive()) is not None:
            assert frame[0][0] in ("refused", "results", "logs", "job_error")
        node.connection.close()
        assert process.wait(timeout=TIMEOUT_S) is not None
