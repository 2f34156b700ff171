"""The nouns of a burla cluster: node types, container specs, standby, jobs, nodes."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from burla.core.environment import PythonPackage

DEFAULT_ENTRYPOINT = ("python", "-m", "burla.services.container_service")
DEFAULT_PYTHON_VERSION = "3.11"
"""The default image's Python (Debian bookworm's python3)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeType(_Frozen):
    """A kind of machine the cluster can start, e.g. an n2-standard-96 VM."""

    name: str = Field(min_length=1)
    cpus: int = Field(gt=0)
    ram_gb: float = Field(gt=0)
    gpus: int = Field(default=0, ge=0)
    price_per_hour: float | None = Field(default=None, ge=0)
    """What one node of this type costs per hour, in USD, when set: it counts for jobs'
    costs and max_cost instead of the Compute Engine list price (a local node has none)."""
    spot: bool = False
    """Its machines are spot VMs (Compute Engine's SPOT provisioning model): priced at spot
    rates, and the cloud may take one back at any time. A preemption is a lost node: its
    inputs go back to the queue and run on other nodes."""

    def describe(self) -> str:
        gpu = f", {self.gpus} GPUs" if self.gpus else ""
        spot = ", spot" if self.spot else ""
        return f"{self.name} ({self.cpus} CPUs, {self.ram_gb:g} GB RAM{gpu}{spot})"


class ContainerSpec(_Frozen):
    """An environment kept running on every node, one container per CPU."""

    image: str = Field(min_length=1)
    python_version: str = DEFAULT_PYTHON_VERSION
    entrypoint: tuple[str, ...] = DEFAULT_ENTRYPOINT
    default: bool = False
    """Jobs of its Python version that name no image run in it."""
    from_job: bool = False
    """Added for a job that named or built it (not by the cluster's admin): such images
    are kept, least recently used going first, within the cluster's limit."""


class StandbyGroup(_Frozen):
    """`count` idle nodes of one type, kept ready for the next job."""

    node_type: NodeType
    count: int = Field(ge=0)


class StandbyDefinition(_Frozen):
    """What the cluster keeps waiting for requests: nodes, and containers on each of them.

    A job that names no image runs in the default image of its caller's Python version
    (its pickled function loads only there): the container spec marked `default` for that
    version. A definition that marks none has one default, its first spec.
    """

    nodes: tuple[StandbyGroup, ...] = ()
    containers: tuple[ContainerSpec, ...] = ()

    @model_validator(mode="after")
    def _names_unique(self) -> StandbyDefinition:
        types = [group.node_type.name for group in self.nodes]
        if len(types) != len(set(types)):
            raise ValueError(f"each node type may appear once in a standby definition: {types}")
        images = [spec.image for spec in self.containers]
        if len(images) != len(set(images)):
            raise ValueError(f"each image may appear once in a standby definition: {images}")
        versions = [spec.python_version for spec in self.containers if spec.default]
        if len(versions) != len(set(versions)):
            raise ValueError(
                f"each Python version may have one default image, not several: {versions}"
            )
        return self

    def count_of(self, node_type_name: str) -> int:
        return sum(g.count for g in self.nodes if g.node_type.name == node_type_name)

    @property
    def images(self) -> frozenset[str]:
        return frozenset(spec.image for spec in self.containers)

    @property
    def defaults(self) -> dict[str, str]:
        """The default image of each Python version (major.minor) the cluster keeps."""
        marked = {spec.python_version: spec.image for spec in self.containers if spec.default}
        if marked or not self.containers:
            return marked
        first = self.containers[0]
        return {first.python_version: first.image}


class ClusterConfig(_Frozen):
    """Everything the scheduler needs to know about a cluster besides its current state.

    `node_types` lists types that may be started on demand beyond those in the standby
    definition; with no standby definition at all, jobs start nodes of these types cold.
    `release` says what happens to a job's nodes when it ends: deleted (cloud VMs, as the
    seed does) or recycled (reset and kept, as the local cluster does). With
    `refill_standby` (the seed's way) standby nodes a job takes are replaced at once, so
    the next job starts warm too; without it, busy nodes count toward standby and new
    nodes start only for jobs that wait, which suits one machine shared by everything.
    """

    standby: StandbyDefinition = StandbyDefinition()
    node_types: tuple[NodeType, ...] = ()
    max_nodes: int | None = Field(default=None, ge=0)
    max_nodes_per_job: int | None = Field(default=None, ge=1)
    """A job never runs on more nodes than this (one machine's cluster: 1, since more
    nodes there add processes, not CPUs)."""
    release: Literal["delete", "recycle"] = "delete"
    refill_standby: bool = True
    boot_timeout_s: float = Field(default=600.0, gt=0)

    @property
    def catalog(self) -> tuple[NodeType, ...]:
        """Node types in order of preference: standby types first, then the others."""
        seen: dict[str, NodeType] = {}
        for node_type in (*(g.node_type for g in self.standby.nodes), *self.node_types):
            seen.setdefault(node_type.name, node_type)
        return tuple(seen.values())


class JobSpec(_Frozen):
    """One call of remote_parallel_map, as the scheduler sees it."""

    job_id: str = Field(min_length=1)
    n_inputs: int = Field(ge=0)
    func_cpu: int = Field(default=1, ge=1)
    func_ram: float = Field(default=4.0, gt=0)
    func_gpu: int = Field(default=0, ge=0)
    image: str | None = None
    max_parallelism: int | None = Field(default=None, ge=1)
    retries: int = Field(default=0, ge=0)
    grow_memory: bool = True
    """An input whose worker went over func_ram runs its retries with twice the memory
    each time, up to its node's whole memory (burla.core.memory)."""
    timeout_s: float | None = Field(default=None, gt=0)
    python_version: str | None = None
    """The caller's Python (major.minor): its pickled function loads only there."""
    packages: tuple[PythonPackage, ...] = ()
    """Python packages the function needs that the workers do not have: installed once
    per cluster, linked into the workers for this job."""
    max_cost: float | None = Field(default=None, gt=0)
    """USD: a job whose estimate is over it is refused, and one whose nodes' time comes
    to it is stopped (see burla.core.cost)."""
    seconds_per_input: float | None = Field(default=None, gt=0)
    """The caller's estimate of one input's run time, which max_cost is checked against
    before the job runs."""
    resumes: str | None = None
    """The job this one resumes (burla.core.resume): the same inputs, of which those that
    succeeded there keep their results and do not run again."""
    resume_failed_only: bool = False
    """Resuming, run only the inputs that failed in the job resumed, not those it never
    ran (they get no result)."""

    @property
    def parallelism(self) -> int:
        """How many inputs the job wants running at once."""
        if self.max_parallelism is None:
            return self.n_inputs
        return min(self.n_inputs, self.max_parallelism)


class NodeState(StrEnum):
    BOOTING = "booting"
    READY = "ready"
    BUSY = "busy"


class Node(_Frozen):
    """A machine in the cluster. A node runs at most one job at a time."""

    node_id: str
    node_type: NodeType
    state: NodeState
    job_id: str | None = None
    since: float = 0.0

    @model_validator(mode="after")
    def _busy_iff_job(self) -> Node:
        if (self.state is NodeState.BUSY) != (self.job_id is not None):
            raise ValueError(f"node {self.node_id}: a node has a job exactly when it is busy")
        return self


class JobState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in _ENDED_JOB


# A set, not a tuple of members: looked up at every report (see inputs._ENDED_INPUT).
_ENDED_JOB = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED})
