"""How a contract suite moves a backend's clock: a clock the test drives, or real time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

Advance = Callable[[float], Awaitable[None]]


class DrivenClock(Protocol):
    """A clock the test moves forward (burla.core.clock.ManualClock is one)."""

    def advance(self, seconds: float) -> None: ...


def advancer(clock: DrivenClock | None) -> Advance:
    """`advance(seconds)` for a backend that reads `clock`, or real time when it is None
    (a database server's own clock, or the wall clock as in a real cluster)."""

    async def advance(seconds: float) -> None:
        if clock is None:
            await anyio.sleep(seconds)
        else:
            clock.advance(seconds)

    return advance
