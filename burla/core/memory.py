"""Memory that grows: what an input that ran out of memory gets on its next try, and
which of a node's workers make room for it.

A job's workers are each held to its func_ram. An input stopped for going over it may
run again (with `retries`, unless the job says grow_memory=False) on a worker with twice
the memory it ran out with, up to its node's whole memory; one that ran out with the
whole node fails at once, for no node of that type can give it more.

A node gives an input more memory with fewer, bigger workers, as func_cpu does with
CPUs: one worker's limit is raised to what the input needs and enough of its siblings
are parked (given no inputs, their CPUs lent to it) that the limits of the workers left
add up to no more than the node's memory. Parked workers stay warm and idle until the
job ends: a stopped one would cost a restart after. A worker keeps its bigger limit for
the rest of the job: lowering a limit under a process that still holds the memory it
grew to would stop it, and the job's other inputs may well need as much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GIB = 2**30


def gib(gb: float) -> int:
    """Bytes of `gb` GB (GiB, as func_ram and a node type's ram_gb count them)."""
    return int(gb * GIB)


def next_memory_gb(ran_out_with: float, node_gb: float) -> float | None:
    """The memory for the next try of an input that ran out with `ran_out_with` GB on a
    node of `node_gb`: twice as much, at most the node's whole memory; None when it had
    the whole node already."""
    if ran_out_with >= node_gb:
        return None
    return min(2 * ran_out_with, node_gb)


def describe_gb(gb: Sequence[float]) -> str:
    """`0.25 GB`, `0.25 GB and 0.5 GB`, `0.25 GB, 0.5 GB and 1 GB`."""
    said = [f"{value:g} GB" for value in gb]
    if len(said) <= 1:
        return "".join(said)
    return f"{', '.join(said[:-1])} and {said[-1]}"


@dataclass(frozen=True)
class WorkerMemory:
    """A worker of the job that is not parked: its memory limit and inputs in flight."""

    name: str
    limit: int
    busy: int = 0


@dataclass(frozen=True)
class Growth:
    """Raise `worker`'s limit to `limit` bytes once it and the workers to `park` have no
    input in flight; from then on the parked ones get no inputs."""

    worker: str
    limit: int
    park: tuple[str, ...]


def plan_growth(node_bytes: int, workers: Sequence[WorkerMemory], need: int) -> Growth:
    """Make room on a node of `node_bytes` for an input that needs `need` bytes (at most
    the node's, more is cut to it), among its job's active `workers` (at least one).

    The worker grown is the biggest (the fewest bytes to add; among equals the least
    busy, which is free soonest). Siblings are parked, idle ones first and among them
    the biggest (fewer parked), until the limits left fit in the node's memory.
    """
    if not workers:
        raise ValueError("a node needs a worker to grow")
    need = min(need, node_bytes)
    grown = min(workers, key=lambda w: (-w.limit, w.busy))
    others = sorted((w for w in workers if w is not grown), key=lambda w: (w.busy, -w.limit))
    used = max(need, grown.limit) + sum(w.limit for w in others)
    park: list[str] = []
    for sibling in others:
        if used <= node_bytes:
            break
        park.append(sibling.name)
        used -= sibling.limit
    return Growth(grown.name, max(need, grown.limit), tuple(park))
