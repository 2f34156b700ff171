"""Frames over one byte stream: the wire format of burla.core.wire, sent and received.

Both persistent connections inside a cluster speak it: main_service to each node, and each
node to each of its workers. One connection keeps messages in order and costs no HTTP
request per message, which is most of a warm job's latency.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any, cast

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

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
    """Frames encoded with burla.core.wire over a byte stream (a TCP connection)."""

    def __init__(self, stream: anyio.abc.ByteStream, max_payload: int = MAX_PAYLOAD) -> None:
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self._send_lock = anyio.Lock(fast_acquire=True)  # free: no trip through the loop
        self._max_payload = max_payload

    async def send(self, frames: Sequence[tuple[dict[str, Any] | list[Any], bytes]]) -> None:
        """Send frames together; a header is a JSON object, or a message's array."""
        async with self._send_lock:
            await self._stream.send(wire.encode_many(frames))

    async def receive(self) -> Frame | None:
        try:
            head, body = wire.lengths(await self._reader.receive_exactly(wire.PREFIX_SIZE))
            if body > self._max_payload:
                raise PayloadTooLargeError(
                    f"a frame's payload of {body} bytes is over the limit of "
                    f"{self._max_payload} bytes ({FRAME_ENV})"
                )
            header = await self._reader.receive_exactly(head) if head else b""
            payload = await self._reader.receive_exactly(body) if body else b""
            return wire.decode_header(header), payload
        except InvalidRequestError as error:
            self.refusal = str(error)
            return None
        except (
            anyio.IncompleteRead,
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,  # closed by this end meanwhile
            OSError,
        ):
            return None

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
