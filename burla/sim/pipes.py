"""In-memory connections between main_service and simulated nodes.

A pipe carries the services' frames as objects, in order: nothing is encoded, copied or
parsed, so a connection costs no socket, no event-loop I/O and no JSON, only the wake-up
of the task that reads it. (The wire format itself is tested against real sockets.)
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import anyio
import trio

from burla.core.protocols import Frame, Frames


class Buffer:
    """Frames on their way in one direction, and whether either end has gone. With
    `delay`, each batch of frames arrives that many virtual seconds after it was sent
    (drawn per batch), never before one sent earlier: a slow network, not a lossy one.
    With `hold`, a batch leaves no earlier than `hold()` says (the sender's CPU is busy)."""

    __slots__ = ("delay", "ended", "frames", "hold", "last_due", "lot", "reader_gone")

    def __init__(
        self,
        delay: Callable[[], float] | None = None,
        hold: Callable[[], float] | None = None,
    ) -> None:
        self.frames: collections.deque[tuple[float, Frame]] = collections.deque()
        self.ended = False
        """The writer is done: once `frames` is empty, the reader sees the end."""
        self.reader_gone = False
        self.lot = trio.lowlevel.ParkingLot()
        self.delay = delay
        self.hold = hold
        self.last_due = 0.0

    def put(self, frames: list[Frame]) -> None:
        due = 0.0
        if self.delay is not None or self.hold is not None:
            due = trio.current_time()
            if self.hold is not None:
                due = max(due, self.hold())
            if self.delay is not None:
                due += self.delay()
            due = self.last_due = max(self.last_due, due)
        self.frames.extend((due, frame) for frame in frames)
        self.lot.unpark_all()

    def end(self) -> None:
        self.ended = True
        self.lot.unpark_all()

    async def take(self) -> Frame | None:
        """The next frame, once it is due; None once the writer is done or this end
        closed."""
        while not self.frames:
            if self.reader_gone or self.ended:
                return None
            await self.lot.park()
        due, _ = self.frames[0]
        if due > trio.current_time():
            await trio.sleep_until(due)
            if self.reader_gone:
                return None
        return self.frames.popleft()[1]


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


def pipe(
    delay: Callable[[], float] | None = None, hold: Callable[[], float] | None = None
) -> tuple[PipeEnd, PipeEnd]:
    """Two connected ends: what one sends, the other receives (after `delay()`, and no
    earlier than `hold()`)."""
    there, back = Buffer(delay, hold), Buffer(delay, hold)
    return PipeEnd(back, there), PipeEnd(there, back)
