"""A real redis-server for the tests: one per test session, on a free loopback port.

It keeps nothing on disk (no RDB snapshots, no append-only file) and runs in its own process
group in a temporary directory; the fixture stops it by PID and removes the directory. A
machine without redis-server fails the tests that need it, saying how to install it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RedisServer:
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a server and anything it forked, by the process group it leads."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _start(executable: str, directory: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A running server and its port; a port someone took meanwhile is tried again."""
    for _ in range(3):
        port = free_loopback_port()
        settings = {
            "--port": str(port),
            "--bind": "127.0.0.1",
            "--save": "",  # keep nothing on disk
            "--appendonly": "no",
            "--dir": str(directory),
            "--daemonize": "no",
        }
        with log.open("wb") as output:
            process = subprocess.Popen(
                [executable, *itertools.chain.from_iterable(settings.items())],
                cwd=directory,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                return process, port
            time.sleep(0.05)
        stop_group(process)
    pytest.fail(
        f"redis-server did not answer PING within {START_TIMEOUT_S} s on a free loopback port; "
        f"its log says:\n{log.read_text(errors='replace')}"
    )


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture() -> Iterator[RedisServer]:
    """The session's redis-server; import this into a test module and ask for `redis_server`."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.fail(
            "redis-server is not on PATH; install it with `bash tools/components/redis.sh` "
            "(or `apt-get install redis-server`), which `make test` runs for you"
        )
    directory = Path(tempfile.mkdtemp(prefix="burla-redis-"))
    try:
        process, port = _start(executable, directory, directory / "redis.log")
        try:
            yield RedisServer(port)
        finally:
            stop_group(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
