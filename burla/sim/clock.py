"""Virtual time: a Clock for the services that reads trio's mock clock, and one heap of
timers for everything the simulator itself schedules.

The services sleep with anyio (each sleeping task is one trio deadline). The simulator's
own waits (input run times, boots, faults, samples) are many and simple, so they share
one task and one trio deadline: the earliest timer in the heap. Timers due at the same
moment fire in the order they were set, which keeps a run repeatable.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

import trio

EPOCH = 1_800_000_000.0
"""What the services read as the simulation's time zero (seconds since the epoch)."""


class VirtualClock:
    """burla's Clock under trio's MockClock: `EPOCH` plus the virtual seconds elapsed."""

    def __init__(self, epoch: float = EPOCH) -> None:
        self.epoch = epoch

    def now(self) -> float:
        return self.epoch + trio.current_time()

    def elapsed(self) -> float:
        """Virtual seconds since the simulation started."""
        return trio.current_time()


class Timer:
    """A callback set for a moment; cancel() keeps it from firing."""

    __slots__ = ("callback", "canceled")

    def __init__(self, callback: Callable[[], Any]) -> None:
        self.callback = callback
        self.canceled = False

    def cancel(self) -> None:
        self.canceled = True


class Timers:
    """Callbacks due at virtual moments, fired in (time, order set) order by `run`."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._scope: trio.CancelScope | None = None
        self.fired = 0

    def at(self, when: float, callback: Callable[[], Any]) -> Timer:
        """Call `callback` at virtual time `when` (at once if that has passed)."""
        timer = Timer(callback)
        heapq.heappush(self._heap, (when, next(self._order), timer))
        scope = self._scope
        if scope is not None and when < scope.deadline:
            scope.deadline = when
        return timer

    def after(self, delay_s: float, callback: Callable[[], Any]) -> Timer:
        return self.at(trio.current_time() + max(0.0, delay_s), callback)

    async def sleep_until(self, when: float) -> None:
        """Wait until virtual time `when` (at once if it has passed): the calling task
        parks on this heap, not on a trio deadline of its own."""
        if when <= trio.current_time():
            return
        task = trio.lowlevel.current_task()
        timer = self.at(when, functools.partial(trio.lowlevel.reschedule, task))

        def abort(_: Any) -> trio.lowlevel.Abort:
            timer.cancel()
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def run(self) -> None:
        """Fire timers as they fall due, forever; one trio deadline at a time."""
        while True:
            deadline = self._heap[0][0] if self._heap else math.inf
            with trio.CancelScope(deadline=deadline) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:
                _, _, timer = heapq.heappop(self._heap)
                if not timer.canceled:
                    self.fired += 1
                    timer.callback()
