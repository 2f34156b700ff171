"""The per-input timeout rule: which of a job's workers to stop, and why.

A node looks at its job's workers now and then: which input each runs (its status file)
and since when. A worker whose input has run past the job's timeout_s, while the node
holds inputs of it, is stopped; the node reports the input when the worker is gone. The
rule does no I/O and reads no clock: the node passes both in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

LOOK_EVERY_S = 0.05
"""Longest time between two looks: a timeout is enforced at most this late (or a quarter
of the timeout, for shorter ones)."""


@dataclass(frozen=True, slots=True)
class WorkerLook:
    """One worker of the job, as the node saw it: the input it runs and since when
    (None: none, as far as its status file says), and whether the node holds inputs of
    it (none held: the input's outcome is in already, or the job moved on)."""

    worker: str
    running: int | None
    started_at: float
    holds_inputs: bool


@dataclass(frozen=True, slots=True)
class StopWorker:
    """Stop `worker`: input `index` has run `ran_s` seconds, past the job's timeout."""

    worker: str
    index: int
    ran_s: float


def look_every_s(timeout_s: float) -> float:
    """How long the node waits between two looks at a job of this timeout."""
    return min(LOOK_EVERY_S, timeout_s / 4)


def overdue(looks: Iterable[WorkerLook], now: float, timeout_s: float) -> list[StopWorker]:
    """The workers to stop at `now`, in the order looked at."""
    return [
        StopWorker(look.worker, look.running, now - look.started_at)
        for look in looks
        if look.running is not None and look.holds_inputs and now - look.started_at > timeout_s
    ]
