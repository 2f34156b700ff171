"""In-memory connections between main_service and simulated nodes.

A pipe carries the services' frames as objects, in order: nothing is encoded, copied or
parsed, so a connection costs no socket, no event-loop I/O and no JSON, only the wake-up
of the task that reads it. (The wire format itself is tested against real sockets.)
"""

from __future__ import annotations

import collections

import anyio
import trio

from burla.services.framing import Frame, Frames


class Buffer:
    """Frames on their way in one direction, and whether either end has gone."""

    __slots__ = ("ended", "frames", "lot", "reader_gone")

    def __init__(self) -> None:
        self.frames: collections.deque[Frame] = collections.deque()
        self.ended = False
        """The writer is done: once `frames` is empty, the reader sees the end."""
        self.reader_gone = False
        self.lot = trio.lowlevel.ParkingLot()

    def put(self, frames: list[Frame]) -> None:
        self.frames.extend(frames)
        self.lot.unpark_all()

    def end(self) -> None:
        self.ended = True
        self.lot.unpark_all()

    async def take(self) -> Frame | None:
        """The next frame; None once the writer is done or this end closed."""
        while not self.frames:
            if self.reader_gone or self.ended:
                return None
            await self.lot.park()
        return self.frames.popleft()


class PipeEnd(Frames):
    """One end of an in-memory connection: reads `incoming`, writes `outgoing`."""

    def __init__(self, incoming: Buffer, outgoing: Buffer) -> None:
        self._in = incoming
        self._out = outgoing
        self._closed = False

    async def send(self, frames: list[Frame]) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._out.reader_gone or self._out.ended:
            raise anyio.BrokenResourceError  # as a socket whose peer went away
        self._out.put(frames)

    async def receive(self) -> Frame | None:
        if self._closed:
            return None
        return await self._in.take()

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
