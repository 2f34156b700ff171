"""The node's end of a worker connection: frames over loopback TCP."""

from __future__ import annotations

import socket
from typing import Any

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from burla.core import wire
from burla.core.errors import BackendError

Frame = tuple[dict[str, Any], bytes]


class WorkerChannel:
    def __init__(self, stream: SocketStream, pid: int) -> None:
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self.pid = pid
        self._send_lock = anyio.Lock()

    @classmethod
    async def connect(cls, port: int, *, timeout_s: float = 30.0) -> WorkerChannel:
        """Connect once the worker listens, and wait for its hello."""
        with anyio.move_on_after(timeout_s):
            while True:
                try:
                    stream = await anyio.connect_tcp("127.0.0.1", port)
                    break
                except OSError:
                    await anyio.sleep(0.01)
            stream.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
            channel = cls(stream, pid=0)
            hello = await channel.receive()
            if hello is None or hello[0].get("op") != "hello":
                await channel.aclose()
                raise BackendError(f"the worker on port {port} did not say hello; see its log")
            channel.pid = int(hello[0]["pid"])
            return channel
        raise BackendError(
            f"no worker answered on 127.0.0.1:{port} within {timeout_s:g} s; see its log"
        )

    async def send(self, frames: list[Frame]) -> None:
        async with self._send_lock:
            await self._stream.send(wire.encode_many(frames))

    async def receive(self) -> Frame | None:
        """The next frame, or None once the worker is gone."""
        try:
            head, body = wire.lengths(await self._reader.receive_exactly(wire.PREFIX_SIZE))
            header = await self._reader.receive_exactly(head) if head else b""
            payload = await self._reader.receive_exactly(body) if body else b""
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return None
        return wire.decode_header(header), payload

    async def aclose(self) -> None:
        await self._stream.aclose()
