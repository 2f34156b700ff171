"""Frames over one TCP connection: the wire format of burla.core.wire, sent and received.

Both persistent connections inside a cluster speak it: main_service to each node, and each
node to each of its workers. One connection keeps messages in order and costs no HTTP
request per message, which is most of a warm job's latency. Both ends run on asyncio's
transports themselves (FrameConnection: open_frames dials, serve_frames listens), where a
send is one write and no turn of the event loop: a warm call crosses them a dozen times.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, cast

import anyio
import anyio.abc
from anyio.abc import TaskGroup

from burla.core import wire
from burla.core.errors import InvalidRequestError, PayloadTooLargeError
from burla.core.limits import FRAME_ENV, RequestLimits
from burla.core.protocols import Frame, Frames

MAX_PAYLOAD = RequestLimits.from_environ(os.environ).frame


class FrameCutter:
    """Cuts every whole frame out of bytes as they arrive, so that a frame costs no read
    of its own and a chunk of many small frames (a worker's results, a node's reports)
    is taken in at once."""

    def __init__(self, max_payload: int) -> None:
        self.frames: collections.deque[Frame] = collections.deque()
        self.ended = False
        """No more frames come: the stream ended, or sent bytes that are no frame."""
        self.refusal: str | None = None
        self._max_payload = max_payload
        self._buffer = bytearray()
        self._needed = wire.PREFIX_SIZE
        """Bytes the buffer must hold before its first frame is whole."""

    def take(self, chunk: bytes) -> None:
        if self.ended:
            return
        self._buffer += chunk
        if len(self._buffer) >= self._needed:
            self._cut()

    def _cut(self) -> None:
        offset = 0
        with memoryview(self._buffer) as view:  # released before the buffer shrinks
            try:
                while len(view) - offset >= wire.PREFIX_SIZE:
                    head, body = wire.lengths(view[offset : offset + wire.PREFIX_SIZE])
                    if body > self._max_payload:
                        raise PayloadTooLargeError(
                            f"a frame's payload of {body} bytes is over the limit of "
                            f"{self._max_payload} bytes ({FRAME_ENV})"
                        )
                    start = offset + wire.PREFIX_SIZE
                    end = start + head + body
                    if end > len(view):
                        self._needed = end - offset
                        break
                    header = wire.decode_header(bytes(view[start : start + head]))
                    self.frames.append((header, bytes(view[start + head : end])))
                    offset = end
                else:
                    self._needed = wire.PREFIX_SIZE
            except InvalidRequestError as error:
                self.refusal = str(error)
                self.ended = True
        del self._buffer[:offset]


MOST_FRAMES_WAITING = 64
"""Frames a connection holds unread before it stops reading from its socket."""


class FrameConnection(asyncio.Protocol, Frames):
    """Frames over a TCP connection (dialed by open_frames, or taken by serve_frames), on
    asyncio's transport itself: a send is one write to it, with no turn of the event loop
    unless the socket is full, which matters where every frame is a hop of a warm call."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._cutter = FrameCutter(max_payload)
        self._transport: asyncio.Transport | None = None
        self._arrived: asyncio.Future[None] | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading_paused = False
        self._lost = False
        self.refusal: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        raw = transport.get_extra_info("socket")
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames go at once

    def data_received(self, data: bytes) -> None:
        self._cutter.take(data)
        if len(self._cutter.frames) > MOST_FRAMES_WAITING and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self._cutter.ended = True
        self._wake_reader()
        # A peer done sending may still read the answers to what it sent: the connection
        # stays open until its owner, having read the last frame, closes it.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._cutter.ended = True
        self._wake_reader()
        self.resume_writing()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def send(self, frames: Sequence[tuple[dict[str, Any] | list[Any], bytes]]) -> None:
        """Send frames together: written at once, waiting only while the socket is full."""
        transport = self._transport
        if transport is None or self._lost or transport.is_closing():
            raise anyio.BrokenResourceError("the connection is closed")
        transport.write(wire.encode_many(frames))
        if not self._writable.is_set():
            await self._writable.wait()
        if self._lost:
            raise anyio.BrokenResourceError("the connection closed while frames went out")

    async def receive(self) -> Frame | None:
        cutter = self._cutter
        while not cutter.frames:
            if cutter.ended:
                self.refusal = cutter.refusal
                return None
            self._arrived = asyncio.get_running_loop().create_future()
            try:
                await self._arrived
            finally:
                self._arrived = None
        frame = cutter.frames.popleft()
        if self._reading_paused and not cutter.frames and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        return frame

    async def aclose(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _wake_reader(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)


async def open_frames(host: str, port: int) -> FrameConnection:
    """A framed TCP connection to `host:port`; OSError if nothing listens there."""
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(FrameConnection, host, port)
    return connection


async def serve_frames(
    sock: socket.socket,
    handle: Callable[[FrameConnection], Coroutine[Any, Any, None]],
    tasks: TaskGroup,
) -> None:
    """Take framed connections on the listening `sock`, each handled in a task of
    `tasks`, until cancelled."""

    def accepted() -> FrameConnection:
        connection = FrameConnection()
        tasks.start_soon(handle, connection)
        return connection

    server = await asyncio.get_running_loop().create_server(accepted, sock=sock)
    try:
        await anyio.sleep_forever()
    finally:
        server.close()


def message_frame(message: wire.Message, payload: bytes = b"") -> Frame:
    """A message as a frame: its JSON array as the header (which every Frames carries as
    it carries an object), then the payload."""
    return cast(Frame, (message.to_json(), payload))
