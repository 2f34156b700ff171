"""In-memory byte streams: main_service's connections to simulated nodes.

A pipe is two one-way buffers. Sending appends bytes and wakes the reader; nothing is
copied or framed beyond what the services' FrameStream does itself, so a connection
costs no socket and no event-loop I/O, only the wake-up of the task that reads it.
"""

from __future__ import annotations

import collections

import anyio
import anyio.abc
import trio


class Buffer:
    """Bytes on their way in one direction, and whether either end has gone."""

    __slots__ = ("chunks", "ended", "lot", "reader_gone")

    def __init__(self) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.ended = False
        """The writer is done: once `chunks` is empty, the reader sees the end."""
        self.reader_gone = False
        self.lot = trio.lowlevel.ParkingLot()

    def put(self, data: bytes) -> None:
        self.chunks.append(data)
        self.lot.unpark_all()

    def end(self) -> None:
        self.ended = True
        self.lot.unpark_all()

    async def take(self, max_bytes: int) -> bytes:
        """The next bytes (at most `max_bytes`); EndOfStream once the writer is done."""
        while not self.chunks:
            if self.reader_gone:
                raise anyio.ClosedResourceError  # closed by this end meanwhile
            if self.ended:
                raise anyio.EndOfStream
            await self.lot.park()
        chunk = self.chunks[0]
        if len(chunk) <= max_bytes:
            self.chunks.popleft()
            return chunk
        self.chunks[0] = chunk[max_bytes:]
        return chunk[:max_bytes]


class PipeEnd(anyio.abc.ByteStream):
    """One end of an in-memory connection: reads `incoming`, writes `outgoing`."""

    def __init__(self, incoming: Buffer, outgoing: Buffer) -> None:
        self._in = incoming
        self._out = outgoing
        self._closed = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._closed:
            raise anyio.ClosedResourceError
        return await self._in.take(max_bytes)

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._out.reader_gone or self._out.ended:
            raise anyio.BrokenResourceError
        self._out.put(bytes(item))

    async def send_eof(self) -> None:
        self._out.end()

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Close at once (also from synchronous code, e.g. when a node dies)."""
        self._closed = True
        self._out.end()
        self._in.reader_gone = True
        self._in.lot.unpark_all()


def pipe() -> tuple[PipeEnd, PipeEnd]:
    """Two connected ends: what one sends, the other receives."""
    there, back = Buffer(), Buffer()
    return PipeEnd(back, there), PipeEnd(there, back)
