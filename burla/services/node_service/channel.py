"""The node's end of a worker connection: frames over loopback TCP."""

from __future__ import annotations

import anyio

from burla.core.errors import BackendError
from burla.core.protocols import Frame
from burla.services.framing import FrameStream, no_delay

__all__ = ["Frame", "WorkerChannel"]


class WorkerChannel(FrameStream):
    pid: int = 0

    @classmethod
    async def connect(cls, port: int, secret: str, *, timeout_s: float = 30.0) -> WorkerChannel:
        """Connect once the worker listens, open with its secret, and wait for its hello."""
        with anyio.move_on_after(timeout_s):
            while True:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                    break
                except OSError:
                    await anyio.sleep(0.01)
            no_delay(stream)
            channel = cls(stream)
            await channel.send([({"op": "open", "secret": secret}, b"")])
            hello = await channel.receive()
            if hello is None or hello[0].get("op") != "hello":
                await channel.aclose()
                raise BackendError(f"the worker on port {port} did not say hello; see its log")
            channel.pid = int(hello[0]["pid"])
            return channel
        raise BackendError(
            f"no worker answered on 127.0.0.1:{port} within {timeout_s:g} s; see its log"
        )
