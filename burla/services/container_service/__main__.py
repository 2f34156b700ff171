"""container_service's process: waits for its node on a loopback port, then runs its inputs."""

from __future__ import annotations

import hmac
import os
import socket
import sys
import threading
import time
from pathlib import Path

from burla.core.errors import BurlaError
from burla.core.worker_wire import Hello, read_open
from burla.services.container_service.status import ResultSpool, StatusFile, spool_path
from burla.services.container_service.worker import Connection, Worker

CONNECT_TIMEOUT_S = 120.0
"""A worker that no node connects to within this long has been forgotten: it exits."""
OPEN_TIMEOUT_S = 10.0
"""How long a caller has to send its first frame, the secret, before it is hung up on."""


def _exit_with_parent() -> None:
    """A worker started as a node's child process goes when its node goes."""
    parent = int(os.environ.get("BURLA_PARENT_PID") or os.getppid())
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def accept_node(listener: socket.socket, secret: str, timeout_s: float) -> Connection:
    """The first connection that opens with `secret`; others are hung up on. SystemExit
    when none came within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        listener.settimeout(left)
        try:
            sock, _ = listener.accept()
        except TimeoutError:
            break
        sock.settimeout(OPEN_TIMEOUT_S)
        connection = Connection(sock)
        if _opens_with(connection, secret):
            sock.settimeout(None)
            return connection
        print("a caller without this worker's secret was hung up on", file=sys.stderr)
        connection.close()
    sys.exit(f"no node connected within {timeout_s:g} s; exiting")


def _opens_with(connection: Connection, secret: str) -> bool:
    """Whether the caller's first frame is Open with the worker's secret."""
    try:
        frame = connection.receive(max_payload=0)
        opened = read_open(frame[0]) if frame is not None else None
    except (OSError, BurlaError):
        return False
    return opened is not None and hmac.compare_digest(opened.secret.encode(), secret.encode())


def main() -> None:
    secret = os.environ.pop("BURLA_WORKER_SECRET", "")
    if not secret:
        sys.exit("BURLA_WORKER_SECRET is not set: only a node starts a worker, with a secret")
    port = int(os.environ["BURLA_PORT"])
    status = os.environ.get("BURLA_STATUS_FILE") or Path(
        os.environ.get("BURLA_CONTAINER_ROOT", "."), "status"
    )
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    threading.Thread(target=_exit_with_parent, name="burla-parent", daemon=True).start()
    connection = accept_node(listener, secret, CONNECT_TIMEOUT_S)
    listener.close()
    connection.send([(Hello(os.getpid()), b"")])
    status_path = Path(status)
    worker = Worker(connection, StatusFile(status_path), ResultSpool(spool_path(status_path)))
    sys.stdout, sys.stderr = worker.stdout, worker.stderr
    try:
        worker.serve()
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


if __name__ == "__main__":
    main()
