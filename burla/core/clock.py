"""The one place burla reads time: a Clock is injected wherever time matters."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since the epoch as a float; virtual in the simulator and in tests."""

    def now(self) -> float: ...


class WallClock:
    """Real time, for production and the local cluster."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """Time that moves only when told to; for tests of leases, timeouts and boots."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance by {seconds})")
        self._now += seconds
