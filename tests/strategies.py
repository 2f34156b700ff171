"""Hypothesis strategies for burla's core, in one place: types, configs, jobs, nodes, events."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import strategies as st

from burla.core.models import (
    ClusterConfig,
    ContainerSpec,
    JobSpec,
    Node,
    NodeState,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.core.protocols import ContainerInfo

TYPE_NAMES = ("tiny", "standard", "highmem", "gpu")
IMAGES = ("python-3.11", "python-3.12", "custom-ml", "custom-r")
NOT_KEPT_IMAGE = "never-built"
"""An image no standby definition drawn here keeps."""

RAM_PER_INPUT = (0.5, 1.0, 4.0, 16.0)

K = TypeVar("K")
T = TypeVar("T")


# Weights --------------------------------------------------------------------------------
# one_of cannot weigh its branches: it merges repeats, and hypothesis caches equal
# strategies (two st.none() are one object), so these draw the branch explicitly.
@st.composite
def mix(draw: st.DrawFn, kinds: Mapping[K, st.SearchStrategy[T]], weighted: Sequence[K]) -> T:
    """A value from one of `kinds`, a kind listed twice in `weighted` coming twice as often."""
    return draw(kinds[draw(st.sampled_from(weighted))])


def one_in(n: int, strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    """A value of `strategy` about once in `n` draws, else None (which it shrinks to)."""
    return mix({False: st.none(), True: strategy}, [False] * (n - 1) + [True])


picks = st.integers(0, 1000)
"""An index into whatever the harness can choose from at that moment, taken modulo its size."""


# Node types, standby definitions, cluster configs ----------------------------------------
def node_types(name: str | None = None) -> st.SearchStrategy[NodeType]:
    """Machines from 1 to 128 CPUs, with little or much RAM, some with GPUs."""
    return st.builds(
        NodeType,
        name=st.sampled_from(TYPE_NAMES) if name is None else st.just(name),
        cpus=st.one_of(st.sampled_from((1, 2, 4, 8, 32, 96)), st.integers(1, 128)),
        ram_gb=st.sampled_from((1.0, 4.0, 16.0, 64.0, 384.0)),
        gpus=st.sampled_from((0, 0, 1, 4)),
    )


def node_type_catalogs() -> st.SearchStrategy[list[NodeType]]:
    """One to three node types with distinct names."""
    return st.lists(node_types(), min_size=1, max_size=3, unique_by=lambda t: t.name)


def container_specs() -> st.SearchStrategy[tuple[ContainerSpec, ...]]:
    """Zero to three environments with distinct images."""
    images = st.lists(st.sampled_from(IMAGES), max_size=3, unique=True)
    return images.map(lambda names: tuple(ContainerSpec(image=name) for name in names))


@st.composite
def standby_definitions(
    draw: st.DrawFn, types: Sequence[NodeType] | None = None
) -> StandbyDefinition:
    """Some of `types` (drawn when not given), zero to four idle nodes of each."""
    catalog = list(types) if types is not None else draw(node_type_catalogs())
    some = draw(st.integers(0, 3)) > 0  # most clusters keep nodes on standby, some none
    chosen = draw(
        st.lists(
            st.sampled_from(catalog),
            min_size=1 if some else 0,
            max_size=len(catalog),
            unique_by=lambda t: t.name,
        )
    )
    groups = tuple(StandbyGroup(node_type=t, count=draw(st.integers(0, 4))) for t in chosen)
    return StandbyDefinition(nodes=groups, containers=draw(container_specs()))


@st.composite
def cluster_configs(
    draw: st.DrawFn,
    *,
    max_nodes: st.SearchStrategy[int | None] | None = None,
    release: st.SearchStrategy[str] | None = None,
) -> ClusterConfig:
    """A standby definition, maybe more node types to start on demand, maybe a size cap."""
    types = draw(node_type_catalogs())
    standby = draw(standby_definitions(types))
    in_standby = {group.node_type.name for group in standby.nodes}
    others = [t for t in types if t.name not in in_standby]
    on_demand = (
        draw(st.lists(st.sampled_from(others), max_size=len(others), unique_by=lambda t: t.name))
        if others
        else []
    )
    # No cap, a tight one (where the scheduler has to choose; twice as often), a loose one.
    caps = mix({0: st.none(), 1: st.integers(0, 4), 2: st.integers(0, 24)}, (0, 1, 1, 2))
    cap = caps if max_nodes is None else max_nodes
    return ClusterConfig(
        standby=standby,
        node_types=tuple(on_demand),
        max_nodes=draw(cap),
        release=draw(st.sampled_from(("delete", "recycle")) if release is None else release),
        refill_standby=draw(st.booleans()),
        max_nodes_per_job=draw(st.one_of(st.none(), st.integers(1, 3))),
        boot_timeout_s=draw(st.sampled_from((60.0, 300.0, 600.0))),
    )


# Jobs and node sets -------------------------------------------------------------------
@st.composite
def job_specs(
    draw: st.DrawFn, config: ClusterConfig, *, job_id: str = "job", fitting: bool = False
) -> JobSpec:
    """Jobs for `config`: most fit some node type and name a kept image (or none); with
    `fitting=False` some ask for more CPUs than any node has or for an image not kept."""
    catalog = config.catalog
    fits = bool(catalog) and (fitting or draw(st.integers(0, 7)) > 0)
    if fits:
        host = draw(st.sampled_from(catalog))
        func_cpu = draw(st.one_of(st.integers(1, min(host.cpus, 4)), st.integers(1, host.cpus)))
        ram = [r for r in RAM_PER_INPUT if r <= host.ram_gb]
        func_ram = draw(st.sampled_from((*ram, host.ram_gb)))
        func_gpu = draw(st.integers(0, host.gpus))
    else:
        largest = max((t.cpus for t in catalog), default=0)
        func_cpu = draw(st.integers(largest + 1, largest + 64))
        func_ram, func_gpu = 1.0, 0
    images: list[str | None] = [None, *sorted(config.standby.images)]
    if not fitting:
        images.append(NOT_KEPT_IMAGE)
    return JobSpec(
        job_id=job_id,
        n_inputs=draw(st.integers(0, 40)),
        func_cpu=func_cpu,
        func_ram=func_ram,
        func_gpu=func_gpu,
        image=draw(st.sampled_from(images)),
        max_parallelism=draw(st.one_of(st.none(), st.integers(1, 40))),
    )


@st.composite
def node_sets(draw: st.DrawFn, config: ClusterConfig, *, max_size: int = 12) -> list[Node]:
    """Nodes of the config's types in any state: booting, ready, or busy with other jobs."""
    if not config.catalog:
        return []
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(config.catalog),
                st.sampled_from(NodeState),
                st.integers(0, 1000),
                st.integers(0, 2),
            ),
            max_size=max_size,
        )
    )
    return [
        Node(
            node_id=f"node-{i:03d}",
            node_type=node_type,
            state=state,
            job_id=f"other-{owner}" if state is NodeState.BUSY else None,
            since=float(since),
        )
        for i, (node_type, state, since, owner) in enumerate(rows)
    ]


@st.composite
def standby_node_sets(draw: st.DrawFn, config: ClusterConfig) -> list[Node]:
    """A cluster exactly in standby: every standby node ready and idle, nothing else."""
    nodes: list[Node] = []
    for group in config.standby.nodes:
        for _ in range(group.count):
            since = float(draw(st.integers(0, 1000)))
            node_id = f"{group.node_type.name}-{len(nodes):03d}"
            nodes.append(
                Node(node_id=node_id, node_type=group.node_type, state=NodeState.READY, since=since)
            )
    return nodes


@st.composite
def planning_cases(
    draw: st.DrawFn, *, in_standby: bool = False
) -> tuple[ClusterConfig, list[Node], JobSpec]:
    """An uncapped cluster, its nodes (random, or exactly its standby set), and a job that
    fits."""
    config = draw(cluster_configs(max_nodes=st.none()).filter(lambda c: bool(c.catalog)))
    nodes = draw(standby_node_sets(config) if in_standby else node_sets(config))
    return config, nodes, draw(job_specs(config, fitting=True))


@st.composite
def start_cases(draw: st.DrawFn) -> tuple[ClusterConfig, list[Node], dict[str, int]]:
    """A cluster with a cap on its size, its nodes, and the nodes running jobs wait for."""
    config = draw(cluster_configs(max_nodes=st.integers(0, 24)).filter(lambda c: bool(c.catalog)))
    names = [t.name for t in config.catalog]
    wants = draw(st.dictionaries(st.sampled_from(names), st.integers(0, 10)))
    return config, draw(node_sets(config)), wants


# Kill plans ---------------------------------------------------------------------------
@dataclass(frozen=True)
class KillPlanCase:
    node_cpus: int
    containers: tuple[ContainerInfo, ...]
    image: str
    func_cpu: int
    max_workers: int | None


@st.composite
def kill_plan_cases(draw: st.DrawFn) -> KillPlanCase:
    """A node in standby (one container per CPU per image, 1-4 images, a few exited), in
    shuffled order, and a job's image, func_cpu that fits the node, and maybe a worker cap."""
    node_cpus = draw(st.one_of(st.sampled_from((1, 4, 96, 128)), st.integers(1, 128)))
    images = draw(st.lists(st.sampled_from(IMAGES), min_size=1, max_size=4, unique=True))
    exited = draw(
        st.sets(st.tuples(st.sampled_from(images), st.integers(0, node_cpus - 1)), max_size=8)
    )
    containers = [
        ContainerInfo(
            name=f"{image}-{cpu:03d}",
            image=image,
            port=8000 + len(images) * cpu + k,
            cpuset=frozenset({cpu}),
            running=(image, cpu) not in exited,
            exit_code=0 if (image, cpu) in exited else None,
        )
        for k, image in enumerate(images)
        for cpu in range(node_cpus)
    ]
    random.Random(draw(st.integers(0, 2**32))).shuffle(containers)  # listing order is arbitrary
    return KillPlanCase(
        node_cpus=node_cpus,
        containers=tuple(containers),
        image=draw(st.sampled_from(images)),
        func_cpu=draw(st.one_of(st.integers(1, min(node_cpus, 8)), st.integers(1, node_cpus))),
        max_workers=draw(st.one_of(st.none(), st.integers(1, node_cpus))),
    )


# Event sequences ----------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """Let `after` seconds pass on the clock, then do `action`."""

    after: float
    action: object


def sequences(
    steps: st.SearchStrategy[Step], max_steps: int, *, run: int = 8
) -> st.SearchStrategy[list[Step]]:
    """Up to `max_steps` steps, in runs of up to `run`. A plain list averages five items;
    runs keep sequences long (a few runs of about run/2) and still let the shrinker drop
    any step."""
    runs = st.lists(st.lists(steps, min_size=1, max_size=run), max_size=max_steps // run)
    return runs.map(lambda runs: [step for run in runs for step in run])


waits = st.one_of(st.just(0.0), st.integers(1, 900).map(float))


@dataclass(frozen=True)
class Submit:
    job: JobSpec
    reuse: int | None = None
    """Submit under the id of a running job (picked by this index) instead of its own."""


@dataclass(frozen=True)
class Boot:
    pick: int
    duplicate: bool = False
    """Report a node that already booted (a duplicate report) instead of a booting one."""


@dataclass(frozen=True)
class FailNode:
    pick: int


@dataclass(frozen=True)
class EndJob:
    pick: int


@dataclass(frozen=True)
class DrainNode:
    """A busy node says it has nothing left to do for its job."""

    pick: int


@dataclass(frozen=True)
class Restart:
    pass


@dataclass(frozen=True)
class ClusterTick:
    pass


@dataclass(frozen=True)
class FinishDelete:
    """A machine being deleted is gone (deletes take a while and end in any order); the
    cluster learns of it only at its next look."""

    pick: int


@dataclass(frozen=True)
class LookAtMachines:
    """main_service lists the machines and tells the cluster which of no node exist."""


@st.composite
def cluster_scenarios(draw: st.DrawFn, *, max_steps: int = 96) -> tuple[ClusterConfig, list[Step]]:
    """A cluster config and a sequence of things happening to it; job ids are unique."""
    config = draw(cluster_configs())
    reuse = one_in(4, picks)
    kinds: dict[type, st.SearchStrategy[object]] = {
        ClusterTick: st.builds(ClusterTick),
        Boot: st.builds(Boot, picks, st.integers(0, 7).map(lambda k: k == 7)),
        Submit: st.builds(Submit, job_specs(config), reuse),
        EndJob: st.builds(EndJob, picks),
        FailNode: st.builds(FailNode, picks),
        DrainNode: st.builds(DrainNode, picks),
        Restart: st.builds(Restart),
        FinishDelete: st.builds(FinishDelete, picks),
        LookAtMachines: st.builds(LookAtMachines),
    }
    weighted = (
        ClusterTick,
        Boot,
        Boot,
        Boot,
        Submit,
        Submit,
        EndJob,
        FailNode,
        DrainNode,
        Restart,
        FinishDelete,
        FinishDelete,
        LookAtMachines,
    )
    steps = draw(sequences(st.builds(Step, waits, mix(kinds, weighted)), max_steps, run=12))
    for i, step in enumerate(steps):
        if isinstance(step.action, Submit):
            job = step.action.job.model_copy(update={"job_id": f"job-{i}"})
            steps[i] = Step(step.after, Submit(job, step.action.reuse))
    return config, steps


@dataclass(frozen=True)
class Claim:
    worker: int
    count: int
    lease_s: float


@dataclass(frozen=True)
class HandOut:
    """main_service hands queued inputs to a node with its assignment: no Store lease."""

    node: int
    count: int


@dataclass(frozen=True)
class TakeHanded:
    """A worker takes inputs handed out to its node, and its node reports the claim."""

    worker: int
    count: int


@dataclass(frozen=True)
class Redeliver:
    """The store hands an input whose lease ran out to another worker."""

    pick: int
    worker: int
    lease_s: float


@dataclass(frozen=True)
class Start:
    """A worker starts the next input it holds (its node tells main_service nothing)."""

    worker: int


@dataclass(frozen=True)
class Succeed:
    worker: int


@dataclass(frozen=True)
class Raise:
    worker: int


@dataclass(frozen=True)
class CrashWorker:
    worker: int


@dataclass(frozen=True)
class RunOutOfMemory:
    """A running input goes over its worker's memory: the worker is stopped."""

    worker: int


@dataclass(frozen=True)
class LoseNode:
    node: int


@dataclass(frozen=True)
class Renew:
    """The worker's node renews the Store leases of what it holds."""

    worker: int
    lease_s: float


@dataclass(frozen=True)
class TimeOut:
    """A running input ran past the job's timeout: its node stops the worker and says so."""

    worker: int


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class InputScenario:
    n_inputs: int
    retries: int
    max_returns: int
    nodes: int
    workers: int
    steps: tuple[Step, ...]
    reused: tuple[int, ...] = ()
    """The job resumes another, where these inputs succeeded: they never run here."""
    skipped: tuple[int, ...] = ()
    """The job resumes another, and runs only the inputs that failed there: these never
    ran there, and do not run here."""
    grow_memory: bool = False


leases = st.sampled_from((5.0, 5.0, 30.0, 60.0))


@st.composite
def input_scenarios(
    draw: st.DrawFn, *, max_steps: int = 96, redeliveries: bool = True
) -> InputScenario:
    """One job's inputs, 1-6 workers on 1-3 nodes, and what happens to them; about one run
    in four cancels the job somewhere along the way."""
    kinds: dict[type, st.SearchStrategy[object]] = {
        TimeOut: st.builds(TimeOut, picks),
        Claim: st.builds(Claim, picks, st.integers(1, 3), leases),
        Start: st.builds(Start, picks),
        Succeed: st.builds(Succeed, picks),
        Raise: st.builds(Raise, picks),
        CrashWorker: st.builds(CrashWorker, picks),
        RunOutOfMemory: st.builds(RunOutOfMemory, picks),
        LoseNode: st.builds(LoseNode, picks),
        Renew: st.builds(Renew, picks, leases),
        Redeliver: st.builds(Redeliver, picks, picks, leases),
        HandOut: st.builds(HandOut, picks, st.integers(1, 4)),
        TakeHanded: st.builds(TakeHanded, picks, st.integers(1, 3)),
    }
    weighted = [TimeOut, Claim, Claim, Start, Start, Succeed, Raise, Raise, HandOut, TakeHanded]
    weighted += [CrashWorker, RunOutOfMemory, RunOutOfMemory, LoseNode, Renew]
    if redeliveries:
        weighted.append(Redeliver)
    after = st.sampled_from((0.0, 0.0, 1.0, 5.0, 30.0, 90.0))
    steps = draw(sequences(st.builds(Step, after, mix(kinds, weighted)), max_steps, run=12))
    cancel_at = draw(one_in(4, st.integers(0, len(steps))))
    if cancel_at is not None:
        steps.insert(cancel_at, Step(0.0, Cancel()))
    n_inputs = draw(st.one_of(st.integers(1, 3), st.integers(1, 10)))
    # About one job in four resumes another: each input was done there, skipped, or runs.
    resumed = draw(
        one_in(4, st.lists(st.sampled_from("drs"), min_size=n_inputs, max_size=n_inputs))
    )
    fates = resumed or ["r"] * n_inputs
    return InputScenario(
        reused=tuple(n for n, fate in enumerate(fates) if fate == "d"),
        skipped=tuple(n for n, fate in enumerate(fates) if fate == "s"),
        n_inputs=n_inputs,
        retries=draw(st.integers(0, 2)),
        max_returns=draw(st.one_of(st.integers(0, 1), st.integers(0, 5))),
        nodes=draw(st.integers(1, 3)),
        workers=draw(st.integers(1, 6)),
        steps=tuple(steps),
        grow_memory=draw(st.booleans()),
    )


def pick(items: Sequence[T], index: int) -> T:
    """The item an abstract `pick` names among those available now."""
    return items[index % len(items)]


# Garbage for the services' protocols -----------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def garbage_headers(ops: Sequence[str]) -> st.SearchStrategy[Any]:
    """Frame headers (JSON objects or arrays, as burla.core.wire has them) that are not
    valid requests: of any shape, or an object naming one of `ops` (or another) with
    fields of any kind."""
    fields = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
    requests = st.builds(
        lambda op, rest: {**rest, "op": op}, st.sampled_from(ops) | json_values, fields
    )
    return requests | fields | st.lists(json_values, max_size=4)


def frame_bytes(header: Any, payload: bytes) -> bytes:
    """A well-formed frame around any JSON header (burla.core.wire's layout)."""
    head = json.dumps(header).encode()
    return len(head).to_bytes(4, "big") + len(payload).to_bytes(4, "big") + head + payload


# Node time (burla.core.cost) ----------------------------------------------------------------
NodeTimeStep = tuple[str, str, float, float | None]
"""(what, node id, seconds since the step before, price per hour): "join", "leave", "end"."""


@st.composite
def node_time_steps(draw: st.DrawFn) -> list[NodeTimeStep]:
    """Nodes joining and leaving a job as time goes on, some priced, ending with its end."""
    nodes = [f"node-{n}" for n in range(4)]
    gaps = st.floats(min_value=0, max_value=3600, allow_nan=False)
    prices = st.one_of(st.none(), st.sampled_from([0.0, 0.5, 3.77]))
    steps: list[NodeTimeStep] = []
    for _ in range(draw(st.integers(0, 30))):
        what = draw(st.sampled_from(["join", "join", "leave"]))
        steps.append((what, draw(st.sampled_from(nodes)), draw(gaps), draw(prices)))
    steps.append(("end", "", draw(gaps), None))
    return steps
