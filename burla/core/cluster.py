"""The cluster's scheduler as a pure state machine: events in, commands out.

Like dask/distributed's WorkerState, `ClusterMachine.handle(event)` does no I/O; the
main_service carries out the commands it returns (start and delete machines, hand nodes
to jobs) and feeds back what happened (a node booted, a node was lost, a job ended).
`validate()` checks the rules after every step: no node on two jobs, the size cap kept,
and once no node is booting, every waiting job and the standby definition are covered.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from burla.core.clock import Clock
from burla.core.errors import InvalidRequestError, InvariantError
from burla.core.models import ClusterConfig, JobSpec, Node, NodeState, NodeType
from burla.core.node_table import NodeTable
from burla.core.scheduling import Census, plan_job, slots_on, starts_for


# Events --------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobSubmitted:
    job: JobSpec


@dataclass(frozen=True)
class JobEnded:
    job_id: str


@dataclass(frozen=True)
class NodeBooted:
    node_id: str


@dataclass(frozen=True)
class JobBacklog:
    """How many of the job's inputs wait in its queue (none is claimed yet)."""

    job_id: str
    queued: int


@dataclass(frozen=True)
class NodeDrained:
    """The node found the job's queue empty and holds none of its inputs."""

    node_id: str
    job_id: str


@dataclass(frozen=True)
class NodeFailed:
    """A node could not boot, or died, or stopped answering."""

    node_id: str


@dataclass(frozen=True)
class RestartCluster:
    """Enter standby afresh: idle nodes go, a new standby set starts. Busy nodes stay."""

    config: ClusterConfig | None = None


@dataclass(frozen=True)
class Tick:
    """Time passed; nodes that boot for longer than the boot timeout are given up."""


@dataclass(frozen=True)
class MachinesLeft:
    """What a look at the provider found: machines of no node that still exist (being
    deleted, or made after their node was given up). They are billed, so each counts
    toward max_nodes until a later look finds it gone."""

    node_ids: frozenset[str]


ClusterEvent = (
    JobSubmitted
    | JobEnded
    | JobBacklog
    | NodeBooted
    | NodeDrained
    | NodeFailed
    | RestartCluster
    | Tick
    | MachinesLeft
)


# Commands ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StartNode:
    node_id: str
    node_type: NodeType


@dataclass(frozen=True)
class AssignNodes:
    """Send the job to these nodes; each applies its container kill plan and starts work
    with as many workers as `workers` says (its share of the job's parallelism)."""

    job: JobSpec
    node_ids: tuple[str, ...]
    workers: tuple[int, ...]


@dataclass(frozen=True)
class DeleteNode:
    node_id: str


@dataclass(frozen=True)
class ResetNode:
    """Recycle a node after its job: restart its standby containers, then report booted."""

    node_id: str


@dataclass(frozen=True)
class ReleaseNode:
    """Take the node off the job it has nothing left to do for: it hands back what it
    may have claimed since, then goes back to standby (`keep`) or is deleted."""

    node_id: str
    job_id: str
    keep: bool


ClusterCommand = StartNode | AssignNodes | DeleteNode | ResetNode | ReleaseNode


@dataclass
class _RunningJob:
    spec: JobSpec
    node_type: NodeType
    want: int
    nodes: dict[str, int] = field(default_factory=dict)
    """Its nodes, and how many of its inputs each runs at once."""
    at_once: int = 0
    """How many of its inputs all its nodes run at once: `nodes` summed, kept as they
    come and go (a job may have thousands)."""
    queued: int = 0
    """Its inputs in the queue, as last told (JobBacklog)."""

    def add(self, node_id: str, workers: int) -> None:
        self.nodes[node_id] = workers
        self.at_once += workers

    def remove(self, node_id: str) -> None:
        self.at_once -= self.nodes.pop(node_id)


NODE_ID_PREFIX = "node-"


def _id_number(node_id: str) -> int:
    """The number in a node id the machine gave (node-000012: 12); 0 for another."""
    number = node_id.removeprefix(NODE_ID_PREFIX)
    return int(number) if node_id.startswith(NODE_ID_PREFIX) and number.isdigit() else 0


class ClusterMachine:
    """Nodes and running jobs of one cluster, and the rules that move them."""

    def __init__(
        self,
        config: ClusterConfig,
        clock: Clock,
        *,
        nodes: Iterable[Node] = (),
        leaving: Iterable[str] = (),
        validate: bool = True,
    ) -> None:
        """`leaving`: machines found at start that are not taken on as nodes (they go)."""
        self.config = config
        self.clock = clock
        self.nodes = NodeTable()
        for node in nodes:
            self.nodes[node.node_id] = node
        self.leaving: set[str] = set(leaving) - self.nodes.keys()
        """Machines of nodes let go that may still exist (see MachinesLeft)."""
        self.jobs: dict[str, _RunningJob] = {}
        self._validate = validate
        # Ids are never given twice, adopted nodes' and leaving machines' included: a
        # machine of a node that failed may still exist when its replacement is made.
        known = [*self.nodes, *self.leaving]
        self._ids = itertools.count(1 + max(map(_id_number, known), default=0))

    # Queries -----------------------------------------------------------------------------
    def wants(self) -> dict[str, int]:
        """Nodes that running jobs still wait for, per node type name."""
        wants: dict[str, int] = {}
        for job in self.jobs.values():
            if job.want:
                wants[job.node_type.name] = wants.get(job.node_type.name, 0) + job.want
        return wants

    def idle(self, node_type_name: str) -> int:
        return self.nodes.count(node_type_name, NodeState.READY)

    def whole(self) -> bool:
        """Nothing is being made up for: no node boots, no job waits for nodes, and every
        standby group has its nodes."""
        if self.nodes.any_in(NodeState.BOOTING) or self.wants():
            return False
        return all(
            self.standing(group.node_type.name) >= group.count
            for group in self.config.standby.nodes
        )

    def standing(self, node_type_name: str) -> int:
        """Nodes that count toward standby: idle ones, and busy ones too without refill."""
        standing = self.nodes.count(node_type_name, NodeState.READY)
        if not self.config.refill_standby:
            standing += self.nodes.count(node_type_name, NodeState.BUSY)
        return standing

    # Events ------------------------------------------------------------------------------
    def handle(self, event: ClusterEvent) -> list[ClusterCommand]:
        match event:
            case JobSubmitted(job):
                commands = self._submit(job)
            case JobEnded(job_id):
                commands = self._end(job_id)
            case JobBacklog(job_id, queued):
                if (running := self.jobs.get(job_id)) is not None:
                    running.queued = queued
                commands = []
            case NodeBooted(node_id):
                commands = self._booted(node_id)
            case NodeDrained(node_id, job_id):
                commands = self._drained(node_id, job_id)
            case NodeFailed(node_id):
                commands = self._failed(node_id)
            case RestartCluster(config):
                commands = self._restart(config)
            case Tick():
                commands = self._tick()
            case MachinesLeft(node_ids):
                commands = self._machines_left(node_ids)
        if self._validate:
            self.validate()
        return commands

    def _submit(self, job: JobSpec) -> list[ClusterCommand]:
        if job.job_id in self.jobs:
            raise InvalidRequestError(f"job {job.job_id} is already running; use a new job id")
        plan = plan_job(
            self.config, self.nodes.values(), job, self.wants(), leaving=len(self.leaving)
        )
        running = _RunningJob(job, plan.node_type, want=plan.new_nodes_for_job, queued=job.n_inputs)
        self.jobs[job.job_id] = running
        commands: list[ClusterCommand] = []
        if plan.join_now:
            workers = tuple(self._join(running, node_id) for node_id in plan.join_now)
            commands.append(AssignNodes(job, plan.join_now, workers))
        commands += self._start(plan.starts)
        return commands

    def _end(self, job_id: str) -> list[ClusterCommand]:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return []
        commands: list[ClusterCommand] = []
        for node_id in sorted(job.nodes):
            node = self.nodes[node_id]
            if self.config.release == "delete":
                commands.append(self._let_go(node_id))
            else:
                self.nodes[node_id] = self._moved(node, NodeState.BOOTING)
                commands.append(ResetNode(node_id))
        return commands + self._reconcile()

    def _booted(self, node_id: str) -> list[ClusterCommand]:
        node = self.nodes.get(node_id)
        if node is None or node.state is not NodeState.BOOTING:
            return []  # deleted meanwhile, or a duplicate report
        type_name = node.node_type.name
        for waiting in [j for j in self.jobs.values() if j.want and j.node_type.name == type_name]:
            left = waiting.spec.parallelism - waiting.at_once
            if left > 0 and (waiting.queued > 0 or not waiting.nodes):
                waiting.want -= 1
                workers = self._join(waiting, node_id)
                return [AssignNodes(waiting.spec, (node_id,), (workers,))]
            # Its nodes cover its parallelism already (a node it lost was replaced by one
            # that took a bigger share), or no input waits in its queue (the nodes it has
            # took them all): it needs no more, and this one would be paid to sit idle;
            # the next job that waits for this type may want it.
            waiting.want = 0
        self.nodes[node_id] = self._moved(node, NodeState.READY)
        if self.standing(type_name) > self.config.standby.count_of(type_name):
            # Not wanted here; under a size cap its room may be wanted by another type.
            return [self._let_go(node_id), *self._reconcile()]
        return []

    def _drained(self, node_id: str, job_id: str) -> list[ClusterCommand]:
        """A node with nothing left to do for its job leaves it, so that it is not paid
        for while the job's other nodes finish; but the job's last node stays with it
        (inputs may come back from a lost worker), as do those of a job that waits for
        nodes. It goes back to standby if standby lacks it, and is deleted if not."""
        node = self.nodes.get(node_id)
        job = self.jobs.get(job_id)
        if node is None or job is None or node.job_id != job_id or job.want or len(job.nodes) < 2:
            return []
        job.remove(node_id)
        type_name = node.node_type.name
        # The others that count toward standby (busy ones too, without refill).
        others = self.standing(type_name) - (0 if self.config.refill_standby else 1)
        keep = self.config.release == "recycle" or others < self.config.standby.count_of(type_name)
        if keep:
            self.nodes[node_id] = self._moved(node, NodeState.BOOTING)
            return [ReleaseNode(node_id, job_id, keep=True)]
        self._let_go(node_id)
        return [ReleaseNode(node_id, job_id, keep=False), *self._reconcile()]

    def _failed(self, node_id: str) -> list[ClusterCommand]:
        node = self.nodes.get(node_id)
        if node is None:
            return []
        commands: list[ClusterCommand] = [self._let_go(node_id)]
        if node.job_id is not None:
            job = self.jobs[node.job_id]
            job.remove(node_id)
            job.want += 1
            commands += self._take_idle(job)
        return [*commands, *self._reconcile()]

    def _take_idle(self, job: _RunningJob) -> list[ClusterCommand]:
        """Give a job that lost a node the idle nodes of its type it wants, at once: a
        replacement it would wait for is started only for what they cannot cover."""
        if job.spec.parallelism <= job.at_once:
            job.want = 0  # the nodes it kept cover its parallelism already
            return []
        idle = sorted(self.nodes.ids(job.node_type.name, NodeState.READY))[: job.want]
        if not idle:
            return []
        job.want -= len(idle)
        workers = tuple(self._join(job, node_id) for node_id in idle)
        return [AssignNodes(job.spec, tuple(idle), workers)]

    def _restart(self, config: ClusterConfig | None) -> list[ClusterCommand]:
        if config is not None:
            self.config = config
        commands: list[ClusterCommand] = []
        for node_id, node in sorted(self.nodes.items()):
            if node.state is not NodeState.BUSY:
                commands.append(self._let_go(node_id))
        return commands + self._reconcile()

    def _tick(self) -> list[ClusterCommand]:
        deadline = self.clock.now() - self.config.boot_timeout_s
        booting = self.nodes.in_state(NodeState.BOOTING)
        stuck = [node_id for node_id in booting if self.nodes[node_id].since <= deadline]
        commands: list[ClusterCommand] = []
        for node_id in sorted(stuck):
            commands += self._failed(node_id)
        return commands

    # Helpers -----------------------------------------------------------------------------
    def _join(self, job: _RunningJob, node_id: str) -> int:
        """Put the node on the job; returns how many of its inputs it runs at once."""
        node = self.nodes[node_id]
        self.nodes[node_id] = node.model_copy(
            update={"state": NodeState.BUSY, "job_id": job.spec.job_id, "since": self.clock.now()}
        )
        left = job.spec.parallelism - job.at_once
        workers = max(1, min(slots_on(node.node_type, job.spec), left))
        job.add(node_id, workers)
        return workers

    def _moved(self, node: Node, state: NodeState) -> Node:
        return node.model_copy(update={"state": state, "job_id": None, "since": self.clock.now()})

    def _machines_left(self, node_ids: frozenset[str]) -> list[ClusterCommand]:
        self.leaving = set(node_ids - self.nodes.keys())
        return self._reconcile()

    def _let_go(self, node_id: str) -> DeleteNode:
        """The node leaves the cluster; its machine counts toward the cap until a look at
        the machines finds it gone."""
        del self.nodes[node_id]
        self.leaving.add(node_id)
        return DeleteNode(node_id)

    def _reconcile(self) -> list[ClusterCommand]:
        census = Census.of_counts(self.nodes.counts(), leaving=len(self.leaving))
        return self._start(starts_for(self.config, census, self.wants()))

    def _start(self, starts: Mapping[str, int]) -> list[ClusterCommand]:
        types = {t.name: t for t in self.config.catalog}
        commands: list[ClusterCommand] = []
        for type_name, count in starts.items():
            for _ in range(count):
                node_id = self._new_id()
                node_type = types[type_name]
                self.nodes[node_id] = Node(
                    node_id=node_id,
                    node_type=node_type,
                    state=NodeState.BOOTING,
                    since=self.clock.now(),
                )
                commands.append(StartNode(node_id, node_type))
        return commands

    def _new_id(self) -> str:
        """A node id no node or machine of this cluster has (machines made elsewhere
        show up in MachinesLeft: their ids are skipped)."""
        while True:
            node_id = f"{NODE_ID_PREFIX}{next(self._ids):06d}"
            if node_id not in self.nodes and node_id not in self.leaving:
                return node_id

    # Invariants --------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise InvariantError if any rule of the cluster is broken."""
        if (wrong := self.nodes.check()) is not None:
            raise InvariantError(f"the node table is off: {wrong}")
        for node_id, node in self.nodes.items():
            if node.job_id is not None:
                job = self.jobs.get(node.job_id)
                if job is None or node_id not in job.nodes:
                    raise InvariantError(f"{node_id} is busy with {node.job_id}, which lacks it")
        owners: dict[str, str] = {}
        for job_id, job in self.jobs.items():
            if job.want < 0:
                raise InvariantError(f"{job_id} wants {job.want} nodes")
            if job.at_once != sum(job.nodes.values()):
                raise InvariantError(f"{job_id} counts {job.at_once} inputs at once: {job.nodes}")
            if job.at_once > max(1, job.spec.parallelism):
                raise InvariantError(f"{job_id} runs more inputs at once than it may: {job.nodes}")
            for node_id in job.nodes:
                if node_id in owners:
                    raise InvariantError(f"{node_id} is on {owners[node_id]} and {job_id}")
                owners[node_id] = job_id
                if self.nodes.get(node_id, None) is None or self.nodes[node_id].job_id != job_id:
                    raise InvariantError(f"{job_id} lists {node_id}, which is not busy with it")
        if self.leaving & self.nodes.keys():
            raise InvariantError(f"{sorted(self.leaving & self.nodes.keys())} left yet kept")
        cap = self.config.max_nodes
        if cap is not None and len(self.nodes) > cap:
            raise InvariantError(f"{len(self.nodes)} nodes exceed the cap of {cap}")
        at_cap = cap is not None and len(self.nodes) + len(self.leaving) >= cap
        if self.nodes.any_in(NodeState.BOOTING) or at_cap:
            return
        if any(job.want for job in self.jobs.values()):
            raise InvariantError("a job waits for nodes but none are booting")
        for group in self.config.standby.nodes:
            if self.standing(group.node_type.name) < group.count:
                raise InvariantError(
                    f"standby wants {group.count} {group.node_type.name} nodes, "
                    f"has {self.standing(group.node_type.name)}, and none are booting"
                )
