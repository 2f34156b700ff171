"""Running a service's ASGI app with uvicorn inside a task group we own (the rest of a
service's process is burla.services.running's)."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Generator

import anyio
import uvicorn
from anyio.abc import TaskGroup
from starlette.types import ASGIApp

from burla.services.tls import ServerCertificate

GRACEFUL_SHUTDOWN_S = 3


class Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: our task group stops it, then cleans up
    (uvicorn would re-raise SIGTERM after serving, killing the process before cleanup)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def start(
    app: ASGIApp, sock: socket.socket, tasks: TaskGroup, tls: ServerCertificate | None = None
) -> Server:
    """Serve `app` on `sock` until SIGTERM or SIGINT, then cancel `tasks`; over TLS with
    `tls`'s certificate when given."""
    # Clients keep connections alive between calls (burla.client.http reuses them for 20 s).
    # A dashboard's live feeds never end by themselves: shutting down cuts them after a while.
    # No lifespan events (the apps have no start-up or shutdown handlers: the service's own
    # task group is their life) and no WebSockets (none is served).
    config = uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=60,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ssl_keyfile=tls.key_path if tls else None,
        ssl_certfile=tls.cert_path if tls else None,
    )
    server = Server(config)
    tasks.start_soon(_serve_then_cancel, server, sock, tasks)
    tasks.start_soon(_stop_on_signal, server)
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
        await anyio.sleep(0.002)
    return server


async def _serve_then_cancel(server: Server, sock: socket.socket, tasks: TaskGroup) -> None:
    await server.serve(sockets=[sock])
    tasks.cancel_scope.cancel()


async def _stop_on_signal(server: Server) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            server.should_exit = True
            return
