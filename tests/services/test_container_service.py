"""The worker process, driven over its loopback protocol as node_service drives it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from burla.core import wire, worker_wire
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
from burla.services.container_service.status import read_spool, read_status, spool_path
from burla.services.container_service.worker import FLUSH_S, SEND_EVERY, Connection

pytestmark = pytest.mark.integration
SECRET = "this-workers-own-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connect(port: int) -> Connection:
    deadline = time.monotonic() + 20
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            break
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    sock.settimeout(20)
    return Connection(sock)


class Node:
    """The node's side of one worker connection."""

    def __init__(self, port: int, root: Path, secret: str = SECRET) -> None:
        self.connection = connect(port)
        self.root = root
        self.connection.send([(Open(secret), b"")])
        hello = self.receive()
        assert hello is not None
        assert type(hello[0]) is Hello
        self.pid = hello[0].pid

    def receive(self) -> tuple[wire.Message, bytes] | None:
        frame = self.connection.receive()
        return None if frame is None else (read_from_worker(*frame), frame[1])

    def job(self, function, job_id: str = "job") -> None:
        self.connection.send([(JobStart(job_id, None, None), cloudpickle.dumps(function))])

    def inputs(self, args: list[tuple], start: int = 0, job_id: str = "job") -> None:
        payloads = [cloudpickle.dumps(a) for a in args]
        items = tuple(InputItem(start + n, len(p), None) for n, p in enumerate(payloads))
        self.connection.send([(Inputs.of(job_id, items), b"".join(payloads))])

    def collect(self, n_results: int) -> tuple[dict[int, tuple[str, object]], list[tuple]]:
        results: dict[int, tuple[str, object]] = {}
        logs: list[tuple] = []
        while len(results) < n_results:
            heard = self.receive()
            assert heard is not None, "the worker hung up"
            message, payload = heard
            if type(message) is Lines:
                logs += [(line.index, line.stream, line.text) for line in message.items]
            elif type(message) is Results:
                offset = 0
                for item in message.items:
                    data = payload[offset : offset + item.size]
                    offset += item.size
                    kind = item.kind
                    value = json.loads(data) if kind == "raised_text" else cloudpickle.loads(data)
                    results[item.index] = (kind, value)
            else:
                return {"__other__": message}, logs
        return results, logs

    def results_until_gone(self) -> set[int]:
        """The inputs whose results came before the worker hung up."""
        sent: set[int] = set()
        while (heard := self.receive()) is not None:
            if type(heard[0]) is Results:
                sent.update(item.index for item in heard[0].items)
        return sent


def start_worker(port: int, root: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BURLA_PORT": str(port),
        "BURLA_CONTAINER_ROOT": str(root),
        "BURLA_WORKER_SECRET": SECRET,
    }
    return subprocess.Popen([sys.executable, "-m", "burla.services.container_service"], env=env)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    port = free_port()
    process = start_worker(port, tmp_path)
    try:
        node = Node(port, tmp_path)
        try:
            yield node
        finally:
            node.connection.close()
    finally:
        process.kill()
        process.wait()


def test_runs_inputs_in_order_and_returns_results(node: Node):
    node.job(lambda x, y: x * y)
    node.inputs([(i, 2) for i in range(100)])
    results, _ = node.collect(100)
    assert results == {i: ("ok", i * 2) for i in range(100)}


def test_prints_come_back_tagged_and_before_their_result(node: Node):
    def talk(x):
        print("out", x)
        print("err", x, file=sys.stderr)
        print("partial", end="")
        return x

    node.job(talk)
    node.inputs([(7,), (8,)])
    results, logs = node.collect(2)
    assert results == {7: ("ok", 7), 8: ("ok", 8)} or results == {0: ("ok", 7), 1: ("ok", 8)}
    by_input = {}
    for index, stream, text in logs:
        by_input.setdefault(index, []).append((stream, text))
    assert by_input[0] == [("stdout", "out 7\n"), ("stderr", "err 7\n"), ("stdout", "partial")]
    assert by_input[1] == [("stdout", "out 8\n"), ("stderr", "err 8\n"), ("stdout", "partial")]


def test_an_exception_comes_back_with_its_traceback(node: Node):
    def fail(x):
        raise ValueError(f"bad {x}")

    node.job(fail)
    node.inputs([(1,)])
    results, _ = node.collect(1)
    kind, error = results[0]
    assert kind == "raised"
    assert isinstance(error, ValueError)
    assert str(error) == "bad 1"
    assert error.__traceback__ is not None
    assert error.__traceback__.tb_frame.f_code.co_name == "fail"


def test_an_exception_that_does_not_pickle_comes_back_as_text(node: Node):
    class Odd(Exception):
        def __init__(self, message):
            super().__init__(message)
            self.lock = threading.Lock()

    def fail(x):
        raise Odd("odd one")

    node.job(fail)
    node.inputs([(1,)])
    results, _ = node.collect(1)
    kind, text = results[0]
    assert kind == "raised_text"
    assert text["type"].endswith("Odd")
    assert text["message"] == "odd one"
    assert "in fail" in text["traceback"]


def test_an_unpicklable_result_is_an_error_not_a_crash(node: Node):
    node.job(lambda x: (y for y in range(x)))
    node.inputs([(3,), (4,)])
    results, _ = node.collect(2)
    assert [kind for kind, _ in results.values()] == ["raised", "raised"]
    assert "generator" in str(results[0][1])


def test_a_function_that_does_not_load_is_reported(node: Node):
    class Unloadable:
        def __reduce__(self):
            return (__import__, ("module_that_is_not_there",))

    node.job(Unloadable())
    results, _ = node.collect(1)
    error = results["__other__"]
    assert type(error) is worker_wire.JobErrorReport
    assert "module_that_is_not_there" in error.message


def test_status_file_names_the_running_input(node: Node):
    node.job(lambda x: time.sleep(x))
    node.inputs([(30,)], start=5)
    deadline = time.monotonic() + 10
    while (status := read_status(node.root / "status")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert status.index == 5


@pytest.mark.parametrize(
    "first",
    [
        [(["open", "a guess"], b"")],
        [(["open"], b"")],
        [(["job", "job", None, None], cloudpickle.dumps(print))],
        [(["open", SECRET], b"x" * 10)],
        [({"op": "open", "secret": SECRET}, b"")],
    ],
    ids=["wrong secret", "no secret", "no open", "a payload", "not a message"],
)
def test_a_caller_without_the_secret_is_hung_up_on_and_the_node_still_gets_in(
    tmp_path: Path, first
):
    port = free_port()
    process = start_worker(port, tmp_path)
    try:
        intruder = connect(port)
        intruder._sock.sendall(wire.encode_many(first))
        assert intruder.receive() is None  # no hello: hung up on
        intruder.close()
        node = Node(port, tmp_path)  # the node, with the secret, is still let in
        node.job(lambda x: x + 1)
        node.inputs([(1,)])
        assert node.collect(1)[0] == {0: ("ok", 2)}
        node.connection.close()
    finally:
        process.kill()
        process.wait()


def test_a_worker_without_a_secret_will_not_start(tmp_path: Path):
    env = {**os.environ, "BURLA_PORT": str(free_port()), "BURLA_CONTAINER_ROOT": str(tmp_path)}
    env.pop("BURLA_WORKER_SECRET", None)
    worker = [sys.executable, "-m", "burla.services.container_service"]
    done = subprocess.run(worker, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "BURLA_WORKER_SECRET is not set" in done.stderr


def test_user_code_does_not_see_the_workers_secret(node: Node):
    node.job(lambda: os.environ.get("BURLA_WORKER_SECRET"))
    node.inputs([()])
    assert node.collect(1)[0] == {0: ("ok", None)}


def test_a_worker_that_dies_mid_frame_sent_or_spooled_every_result_it_finished(node: Node):
    """Of a frame's short inputs that finished before the one that killed their worker,
    it sent all but the last few, and those few are in its spool for the node to read:
    only the input that killed it runs again."""

    def crash_at_100(x):
        if x == 100:
            os._exit(3)
        return x

    node.job(crash_at_100)
    node.inputs([(x,) for x in range(200)])
    sent = node.results_until_gone()
    spooled = {index for index, _, _ in read_spool(spool_path(node.root / "status"))}
    finished = set(range(100))
    assert sent <= finished
    assert len(finished - sent) < SEND_EVERY
    assert sent | spooled == finished


def test_results_older_than_the_flush_interval_go_before_the_next_input(node: Node):
    """A result that waited FLUSH_S is sent before the next input starts, so an input that
    kills its worker after a slow one takes neither result along."""

    def slow_then_crash(x):
        if x == 2:
            os._exit(3)
        time.sleep(3 * FLUSH_S * x)
        return x

    node.job(slow_then_crash)
    node.inputs([(0,), (1,), (2,)])
    assert node.results_until_gone() == {0, 1}


def test_a_worker_whose_node_hung_up_starts_no_more_inputs(tmp_path: Path):
    """Their results could reach no one: they run again elsewhere."""
    port = free_port()
    process = start_worker(port, tmp_path)
    runs, go_on = tmp_path / "runs", tmp_path / "go-on"
    node = Node(port, tmp_path)
    try:

        def wait_at_20(x):
            with open(runs, "a") as log:
                log.write(f"{x}\n")
            while x == 20 and not go_on.exists():
                time.sleep(0.01)
            return x

        node.job(wait_at_20)
        node.inputs([(x,) for x in range(100)])
        deadline = time.monotonic() + 20
        while getattr(read_status(tmp_path / "status"), "index", None) != 20:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # The node hangs up while input 20 runs (its read side stays open, so the worker
        # learns it from the hang-up alone, not from a send that fails).
        node.connection._sock.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        go_on.touch()
        assert process.wait(timeout=20) == 0
        assert runs.read_text().split() == [str(x) for x in range(21)]
    finally:
        node.connection.close()
        process.kill()
        process.wait()
