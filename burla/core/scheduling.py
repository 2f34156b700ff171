"""Standby math and node assignment: which nodes a job gets now, and which to start.

The seed's example is the specification: with 5 idle 96-CPU nodes on standby and a job
of 1,000 single-CPU inputs, 480 CPUs start now, 6 new nodes are needed to reach a
parallelism of 1,000, 5 more keep the standby definition whole, so 11 nodes start and
the first 6 of them to become ready join the job.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from burla.core.errors import InvalidRequestError, ResourceRequestError
from burla.core.models import ClusterConfig, JobSpec, Node, NodeState, NodeType


def slots_on(node_type: NodeType, job: JobSpec) -> int:
    """How many of the job's inputs one node of this type runs at once (0: it does not fit)."""
    slots = min(node_type.cpus // job.func_cpu, int(node_type.ram_gb // job.func_ram))
    if job.func_gpu:
        slots = min(slots, node_type.gpus // job.func_gpu)
    return slots


def node_type_for(config: ClusterConfig, job: JobSpec) -> NodeType:
    """The node type new nodes for this job are started as: the first one it fits on.

    Raises a ResourceRequestError naming the largest node type when none fits, and an
    InvalidRequestError when the job asks for an image the cluster does not keep.
    """
    images = config.standby.images
    if job.image is not None and images and job.image not in images:
        raise InvalidRequestError(
            f"image {job.image!r} is not in the standby definition (it keeps "
            f"{', '.join(sorted(images))}); add it to the standby definition and restart "
            "the cluster, or run without image="
        )
    catalog = config.catalog
    if not catalog:
        raise InvalidRequestError(
            "the cluster has no node types to run jobs on; add a node type to the standby "
            "definition or to the cluster's node_types"
        )
    for node_type in catalog:
        if slots_on(node_type, job) > 0:
            return node_type
    largest = max(catalog, key=lambda t: (t.cpus, t.ram_gb, t.gpus))
    raise ResourceRequestError(
        f"func_cpu={job.func_cpu}, func_ram={job.func_ram:g} GB, func_gpu={job.func_gpu} "
        f"fits on no node type; the largest is {largest.describe()}. Ask for at most that "
        "per input, or add a bigger node type to the cluster."
    )


@dataclass(frozen=True)
class Census:
    """The nodes that exist, counted per node type name: busy ones, and supply (booting
    or idle); `total` counts every node and machine toward the cap."""

    supply: Mapping[str, int]
    busy: Mapping[str, int]
    total: int

    @classmethod
    def of(cls, nodes: Iterable[Node], *, leaving: int = 0) -> Census:
        return cls.of_counts(Counter((n.node_type.name, n.state) for n in nodes), leaving=leaving)

    @classmethod
    def of_counts(cls, counts: Mapping[tuple[str, NodeState], int], *, leaving: int = 0) -> Census:
        """From how many nodes there are of each (type name, state)."""
        supply: dict[str, int] = {}
        busy: dict[str, int] = {}
        for (name, state), count in counts.items():
            into = busy if state is NodeState.BUSY else supply
            into[name] = into.get(name, 0) + count
        return cls(supply, busy, leaving + sum(counts.values()))


def nodes_to_start(
    config: ClusterConfig, nodes: Iterable[Node], wants: Mapping[str, int], *, leaving: int = 0
) -> dict[str, int]:
    """How many nodes of each type to start so that waiting jobs and standby are covered.

    `nodes` are all nodes that exist; `wants` counts, per node type name, the nodes that
    running jobs still wait for; `leaving` machines of no node still exist and count
    toward the cap. Booting and idle nodes count as supply, first for the waiting jobs,
    then for standby. With a cap on cluster size, jobs come before standby.
    """
    return starts_for(config, Census.of(nodes, leaving=leaving), wants)


def starts_for(config: ClusterConfig, census: Census, wants: Mapping[str, int]) -> dict[str, int]:
    """nodes_to_start, from the nodes counted."""
    supply, busy = census.supply, census.busy
    names = [t.name for t in config.catalog]
    for_jobs = {n: max(0, wants.get(n, 0) - supply.get(n, 0)) for n in names}
    for_standby = {}
    for n in names:
        idle_wanted = config.standby.count_of(n)
        if not config.refill_standby:
            # Busy nodes count, and so do the nodes waiting jobs are about to take.
            idle_wanted = max(0, idle_wanted - busy.get(n, 0) - wants.get(n, 0))
        needed = wants.get(n, 0) + idle_wanted - supply.get(n, 0)
        for_standby[n] = max(0, needed) - for_jobs[n]
    room = math.inf if config.max_nodes is None else max(0, config.max_nodes - census.total)
    starts: dict[str, int] = {}
    for need in (for_jobs, for_standby):
        for name in names:
            count = int(min(need[name], room))
            if count:
                starts[name] = starts.get(name, 0) + count
                room -= count
    return starts


@dataclass(frozen=True)
class JobPlan:
    """What the cluster does the moment a job arrives."""

    job_id: str
    node_type: NodeType
    join_now: tuple[str, ...]
    workers_now: int
    cpus_now: int
    new_nodes_for_job: int
    starts: Mapping[str, int] = field(default_factory=dict)

    @property
    def nodes_to_start(self) -> int:
        return sum(self.starts.values())


def plan_job(
    config: ClusterConfig,
    nodes: Iterable[Node],
    job: JobSpec,
    wants: Mapping[str, int] | None = None,
    *,
    leaving: int = 0,
) -> JobPlan:
    """Plan a new job: ready idle nodes join now, new nodes cover the rest and standby.

    `wants` are the nodes other running jobs still wait for, per node type name;
    `leaving` machines of no node still exist and count toward the cap.
    """
    node_type = node_type_for(config, job)
    per_node = slots_on(node_type, job)
    existing = list(nodes)
    idle = [n for n in existing if n.state is NodeState.READY and slots_on(n.node_type, job) > 0]
    idle.sort(key=lambda n: (-slots_on(n.node_type, job), n.since, n.node_id))
    per_job = config.max_nodes_per_job or math.inf
    joining: list[Node] = []
    workers = 0
    for node in idle:
        if workers >= job.parallelism or len(joining) >= per_job:
            break
        joining.append(node)
        workers += slots_on(node.node_type, job)
    new_for_job = math.ceil(max(0, job.parallelism - workers) / per_node)
    new_for_job = int(min(new_for_job, per_job - len(joining)))

    joined = {n.node_id for n in joining}
    after = [
        n.model_copy(update={"state": NodeState.BUSY, "job_id": job.job_id})
        if n.node_id in joined
        else n
        for n in existing
    ]
    all_wants = dict(wants or {})
    all_wants[node_type.name] = all_wants.get(node_type.name, 0) + new_for_job
    return JobPlan(
        job_id=job.job_id,
        node_type=node_type,
        join_now=tuple(n.node_id for n in joining),
        workers_now=min(workers, job.parallelism),
        cpus_now=min(workers, job.parallelism) * job.func_cpu,
        new_nodes_for_job=new_for_job,
        starts=nodes_to_start(config, after, all_wants, leaving=leaving),
    )


def most_nodes(config: ClusterConfig, job: JobSpec) -> int:
    """The most nodes the job may run on at once, as new nodes of its type."""
    nodes = math.ceil(job.parallelism / max(1, slots_on(node_type_for(config, job), job)))
    for cap in (config.max_nodes, config.max_nodes_per_job):
        if cap:
            nodes = min(nodes, cap)
    return max(1, nodes)
