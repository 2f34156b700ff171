"""Frames over one byte stream: the wire format of burla.core.wire, sent and received.

Both persistent connections inside a cluster speak it: main_service to each node, and each
node to each of its workers. One connection keeps messages in order and costs no HTTP
request per message, which is most of a warm job's latency.
"""

from __future__ import annotations

import collections
import os
import socket
from collections.abc import Sequence
from typing import Any, cast

import anyio
import anyio.abc

from burla.core import wire
from burla.core.errors import InvalidRequestError, PayloadTooLargeError
from burla.core.limits import FRAME_ENV, RequestLimits
from burla.core.protocols import Frame, Frames

MAX_PAYLOAD = RequestLimits.from_environ(os.environ).frame


def framed(stream: anyio.abc.ByteStream | Frames) -> Frames:
    """Frames over a byte stream; a connection that carries frames already (the
    simulator's, which need no encoding) as it is."""
    return FrameStream(stream) if isinstance(stream, anyio.abc.ByteStream) else stream


class FrameStream(Frames):
    """Frames encoded with burla.core.wire over a byte stream (a TCP connection).

    Whatever arrives is read at once and cut into every whole frame it holds: a frame
    costs no trip through the event loop of its own, and a chunk of many small frames
    (a worker's results, a node's reports) costs one."""

    def __init__(self, stream: anyio.abc.ByteStream, max_payload: int = MAX_PAYLOAD) -> None:
        self._stream = stream
        self._send_lock = anyio.Lock(fast_acquire=True)  # free: no trip through the loop
        self._max_payload = max_payload
        self._buffer = bytearray()
        self._needed = wire.PREFIX_SIZE
        """Bytes the buffer must hold before its first frame is whole."""
        self._frames: collections.deque[Frame] = collections.deque()
        self._ended = False
        self.refusal: str | None = None

    async def send(self, frames: Sequence[tuple[dict[str, Any] | list[Any], bytes]]) -> None:
        """Send frames together; a header is a JSON object, or a message's array."""
        async with self._send_lock:
            await self._stream.send(wire.encode_many(frames))

    async def receive(self) -> Frame | None:
        """The next frame; None once the stream ended, failed, or sent what is no frame
        (then `refusal` says what), after the whole frames that came before."""
        while not self._frames:
            if self._ended:
                return None
            try:
                chunk = await self._stream.receive()
            except (
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,  # closed by this end meanwhile
                OSError,
            ):
                self._ended = True
                return None
            self._buffer += chunk
            if len(self._buffer) >= self._needed:
                self._cut()
        return self._frames.popleft()

    def _cut(self) -> None:
        """Move every whole frame out of the buffer."""
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
                    self._frames.append((header, bytes(view[start + head : end])))
                    offset = end
                else:
                    self._needed = wire.PREFIX_SIZE
            except InvalidRequestError as error:
                self.refusal = str(error)
                self._ended = True
        del self._buffer[:offset]

    async def aclose(self) -> None:
        await self._stream.aclose()


def message_frame(message: wire.Message, payload: bytes = b"") -> Frame:
    """A message as a frame: its JSON array as the header (which every Frames carries as
    it carries an object), then the payload."""
    return cast(Frame, (message.to_json(), payload))


def no_delay(stream: anyio.abc.SocketStream) -> None:
    """Small frames go out at once instead of waiting for the peer's delayed ACK."""
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
