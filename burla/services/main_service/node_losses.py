"""NodeLosses: the nodes the cluster lost and why, so that a preempted spot VM reads
apart from a machine that failed (`burla cluster status`, the dashboard)."""

from __future__ import annotations

import collections
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

KEPT = 50
"""Losses kept to show; older ones still count."""


class LossCause(StrEnum):
    PREEMPTED = "preempted"
    """The cloud took the machine back (a spot VM)."""
    MACHINE_FAILED = "machine failed"
    """The machine stopped on its own: a crash, a host error."""
    MACHINE_GONE = "machine gone"
    """The machine is no longer there (deleted by someone else)."""
    UNREACHABLE = "connection lost"
    """Its node_service stopped answering; the machine may still be up."""


@dataclass
class NodeLoss:
    at: float
    """When it was lost (the cluster's clock, seconds since the epoch)."""
    node_id: str
    node_type: str
    job_id: str | None
    """The job it was running, whose inputs on it went back to the queue."""
    cause: LossCause


class NodeLosses:
    """The latest losses, and how many of each cause since main_service started.

    A node is often lost by its connection first and its machine is seen preempted a
    moment later: `preempted` then changes the cause of its loss."""

    def __init__(self) -> None:
        self.recent: collections.deque[NodeLoss] = collections.deque(maxlen=KEPT)
        self.counts: collections.Counter[LossCause] = collections.Counter()

    def lost(self, loss: NodeLoss) -> None:
        self.recent.append(loss)
        self.counts[loss.cause] += 1

    def preempted(self, node_id: str) -> None:
        """The machine of a node lost lately turns out to have been preempted."""
        for loss in reversed(self.recent):
            if loss.node_id == node_id:
                if loss.cause is not LossCause.PREEMPTED:
                    self.counts[loss.cause] -= 1
                    self.counts[LossCause.PREEMPTED] += 1
                    loss.cause = LossCause.PREEMPTED
                return

    def as_json(self) -> dict[str, Any]:
        return {
            "recent": [{**asdict(loss), "cause": loss.cause.value} for loss in self.recent],
            "counts": {cause.value: self.counts[cause] for cause in LossCause},
        }
