"""Listening sockets on 127.0.0.1, the only address burla's local services use."""

from __future__ import annotations

import socket

BACKLOG = 2048
"""As many connections as uvicorn queues by default."""


def bind_loopback() -> tuple[socket.socket, str]:
    """A listening socket on a free 127.0.0.1 port, and its address.

    Created with IPPROTO_TCP named, so asyncio turns Nagle off on the connections it
    accepts; otherwise a response's body waits ~40 ms for the client's delayed ACK.
    It listens at once, before its service serves: a node that boots first connects, and
    its request waits in the backlog until it is answered, rather than being refused and
    asked again after a pause.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(BACKLOG)
    return sock, f"127.0.0.1:{sock.getsockname()[1]}"
