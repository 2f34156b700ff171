"""Container kill plans: which of a node's warm containers a job keeps, on which CPUs.

A node in standby runs one container per CPU per container spec. When a job arrives the
node keeps floor(CPUs / func_cpu) containers of the job's image, each pinned to its own
func_cpu CPUs, and kills every other container. 96 CPUs and func_cpu=32: keep 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from burla.core.errors import InvalidRequestError
from burla.core.protocols import ContainerInfo


@dataclass(frozen=True)
class KeptContainer:
    container: ContainerInfo
    cpuset: frozenset[int]


@dataclass(frozen=True)
class KillPlan:
    keep: tuple[KeptContainer, ...]
    kill: tuple[ContainerInfo, ...]


def plan_containers(
    node_cpus: int,
    containers: Sequence[ContainerInfo],
    *,
    image: str,
    func_cpu: int,
    max_workers: int | None = None,
) -> KillPlan:
    """Keep up to floor(node_cpus / func_cpu) running containers of `image`, at most
    `max_workers` (a RAM or GPU limit), and give the i-th one CPUs
    [i * func_cpu, (i + 1) * func_cpu). Everything else is killed."""
    if func_cpu < 1:
        raise InvalidRequestError(f"func_cpu must be at least 1, not {func_cpu}")
    workers = node_cpus // func_cpu
    if max_workers is not None:
        workers = min(workers, max_workers)
    if workers < 1:
        raise InvalidRequestError(
            f"func_cpu={func_cpu} needs more CPUs than this node's {node_cpus}; "
            "ask for fewer CPUs per input"
        )
    candidates = sorted(
        (c for c in containers if c.image == image and c.running),
        key=lambda c: (min(c.cpuset, default=node_cpus), c.name),
    )
    if not candidates:
        raise InvalidRequestError(
            f"this node runs no container of image {image!r}; restart the cluster so every "
            "node starts the standby definition's containers"
        )
    kept = candidates[:workers]
    keep = tuple(
        KeptContainer(c, frozenset(range(i * func_cpu, (i + 1) * func_cpu)))
        for i, c in enumerate(kept)
    )
    kept_names = {c.name for c in kept}
    kill = tuple(c for c in containers if c.name not in kept_names)
    return KillPlan(keep=keep, kill=kill)
