"""Pauses that double after each failure in a row: the one backoff rule of burla.

Every loop that waits longer after each failure (retries of a remote call, a node
looking at an empty queue, node creations that keep failing) takes its pauses from a
Backoff. It never sleeps: callers sleep the pause it gives in their own way (anyio,
time.sleep, or a wait that something else may end early), and pass in the clock that
measures their deadline, so the simulator's virtual time works as the real one does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

_JITTER = random.Random()
"""Draws the jitter of every Backoff not given a generator of its own (seeding a new one
reads the OS's entropy: too dear for a loop that makes a Backoff per call)."""


class Backoff:
    """Pauses from `first_s` doubling up to `max_s`.

    `jitter` is the share of each pause drawn at random: 0 gives the pause itself,
    1 a pause anywhere from 0 to it ("full jitter", so that many callers do not retry
    in step), 0.5 one from half of it to all of it. With `give_up_after_s`, the Backoff
    is `exhausted` once waiting out the next pause would end past that many seconds from
    its making, by `clock`.
    """

    def __init__(
        self,
        first_s: float,
        max_s: float,
        *,
        jitter: float = 0.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] | None = None,
        give_up_after_s: float = math.inf,
    ) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"a backoff needs 0 < first_s <= max_s, not {first_s}, {max_s}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter is a share from 0 to 1, not {jitter}")
        if clock is None and give_up_after_s != math.inf:
            raise ValueError("a backoff that gives up needs a clock")
        self.first_s, self.max_s, self.jitter = first_s, max_s, jitter
        self._rng = rng or _JITTER
        self._clock = clock
        self._started = clock() if clock is not None else 0.0
        self._give_up_after_s = give_up_after_s
        self._next_s = first_s
        self.failures = 0

    @property
    def elapsed_s(self) -> float:
        """Seconds since the Backoff was made, by its clock (0 without one)."""
        return self._clock() - self._started if self._clock is not None else 0.0

    @property
    def exhausted(self) -> bool:
        """Whether waiting out the next pause would end past the deadline."""
        return self.elapsed_s + self._next_s > self._give_up_after_s

    def pause(self) -> float:
        """The pause to wait after one more failure; the next one is twice as long."""
        self.failures += 1
        longest = self._next_s
        self._next_s = min(longest * 2, self.max_s)
        return longest - self._rng.uniform(0, longest * self.jitter) if self.jitter else longest

    def reset(self) -> None:
        """Start again from the first pause: the thing waited for succeeded."""
        self._next_s, self.failures = self.first_s, 0
