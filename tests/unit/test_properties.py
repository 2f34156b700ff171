"""Property tests of burla's core: random event sequences against the rules each part keeps."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given

from burla.core.clock import ManualClock
from burla.core.cluster import (
    AssignNodes,
    ClusterCommand,
    ClusterEvent,
    ClusterMachine,
    DeleteNode,
    JobEnded,
    JobSubmitted,
    MachinesLeft,
    NodeBooted,
    NodeDrained,
    NodeFailed,
    ReleaseNode,
    ResetNode,
    RestartCluster,
    StartNode,
)
from burla.core.cluster import Tick as ClusterTickEvent
from burla.core.errors import InvalidRequestError, ResourceRequestError
from burla.core.inputs import (
    CancelJob,
    Discard,
    FinishJob,
    Grow,
    InputCommand,
    InputEvent,
    InputMachine,
    InputRaised,
    InputsClaimed,
    InputsHandedOut,
    InputsSucceeded,
    InputStatus,
    InputTimedOut,
    KillWorker,
    NodeLost,
    RecordFailure,
    Requeue,
    Resumed,
    WorkerDied,
    handed_to,
)
from burla.core.kill_plan import plan_containers
from burla.core.memory import next_memory_gb
from burla.core.models import ClusterConfig, JobSpec, JobState, NodeState, NodeType
from burla.core.scheduling import nodes_to_start, plan_job, slots_on
from tests.strategies import (
    Boot,
    Cancel,
    Claim,
    ClusterTick,
    CrashWorker,
    DrainNode,
    EndJob,
    FailNode,
    FinishDelete,
    HandOut,
    InputScenario,
    KillPlanCase,
    LookAtMachines,
    LoseNode,
    Raise,
    Redeliver,
    Renew,
    Restart,
    RunOutOfMemory,
    Start,
    Step,
    Submit,
    Succeed,
    TakeHanded,
    TimeOut,
    cluster_scenarios,
    input_scenarios,
    kill_plan_cases,
    pick,
    planning_cases,
    start_cases,
)


# ClusterMachine -------------------------------------------------------------------------
def snapshot(machine: ClusterMachine) -> object:
    """Everything a rejected submit must leave as it was."""
    jobs = {
        job_id: (job.spec, job.node_type, job.want, frozenset(job.nodes))
        for job_id, job in machine.jobs.items()
    }
    return machine.config, dict(machine.nodes), jobs


class ClusterHarness:
    """Plays main_service: carries out the machine's commands on its own model of which
    machines exist, and checks after every step that the two agree and the rules hold."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.clock = ManualClock()
        self.machine = ClusterMachine(config, self.clock)
        self.types: dict[str, NodeType] = {}  # every machine of a node
        self.deleting: set[str] = set()  # machines let go that still exist (and are billed)
        self.booting: dict[str, float] = {}  # machines booting, since when
        self.owner: dict[str, str] = {}  # machines assigned to a running job
        self.jobs: dict[str, JobSpec] = {}  # running jobs

    def act(self, action: object) -> None:
        match action:
            case Submit(job, reuse):
                if reuse is not None and self.jobs:
                    job = job.model_copy(update={"job_id": pick(sorted(self.jobs), reuse)})
                self.submit(job)
            case Boot(index, duplicate=False):
                if self.booting:
                    self.boot(pick(sorted(self.booting), index))
            case Boot(index, duplicate=True):
                booted = sorted(set(self.types) - set(self.booting))
                if booted:
                    node_id = pick(booted, index)
                    before = snapshot(self.machine)
                    assert self.send(NodeBooted(node_id)) == [], "a duplicate boot report acted"
                    assert snapshot(self.machine) == before
            case FailNode(index):
                if self.types:
                    self.fail(pick(sorted(self.types), index))
            case EndJob(index):
                if self.jobs:
                    self.end(pick(sorted(self.jobs), index))
            case DrainNode(index):
                if self.owner:
                    self.drain(pick(sorted(self.owner), index))
            case Restart():
                self.restart()
            case ClusterTick():
                self.tick()
            case FinishDelete(index):
                if self.deleting:
                    self.deleting.remove(pick(sorted(self.deleting), index))
            case LookAtMachines():
                self.look()
            case _:
                raise AssertionError(f"unknown action {action!r}")

    # Events, each with what it must do ---------------------------------------------------
    def submit(self, job: JobSpec) -> None:
        catalog = self.config.catalog
        images = self.config.standby.images
        duplicate = job.job_id in self.jobs
        image_ok = job.image is None or not images or job.image in images
        fits = any(slots_on(t, job) > 0 for t in catalog)
        before = snapshot(self.machine)
        refusal: InvalidRequestError | None = None
        try:
            commands = self.machine.handle(JobSubmitted(job))
        except InvalidRequestError as error:
            refusal = error
        if refusal is not None:
            assert snapshot(self.machine) == before, "a refused job changed the cluster"
            self.machine.validate()
            self.check()
            if duplicate or not image_ok or not catalog:
                assert type(refusal) is InvalidRequestError
            else:
                assert not fits, f"a job that fits was refused: {refusal}"
                assert type(refusal) is ResourceRequestError
            return
        assert not duplicate, "a second job with a running job's id was accepted"
        assert image_ok, f"a job for image {job.image!r}, which is not kept, was accepted"
        assert fits, "a job that fits no node type was accepted"
        self.jobs[job.job_id] = job
        self.carry_out(commands)

    def boot(self, node_id: str) -> None:
        del self.booting[node_id]
        commands = self.send(NodeBooted(node_id))
        about_it = [c for c in commands if not isinstance(c, StartNode)]
        assert len(about_it) <= 1, f"booting {node_id} gave {commands}"
        assert all(
            isinstance(c, AssignNodes | DeleteNode) and node_id in _nodes_of(c) for c in about_it
        ), f"booting {node_id} gave {commands}"

    def fail(self, node_id: str) -> None:
        commands = self.send(NodeFailed(node_id))
        assert DeleteNode(node_id) in commands, f"the failed {node_id} was not deleted"

    def drain(self, node_id: str) -> None:
        job_id = self.owner[node_id]
        job = self.machine.jobs[job_id]
        last, waits = len(job.nodes) == 1, job.want > 0
        commands = self.send(NodeDrained(node_id, job_id))
        released = [c for c in commands if isinstance(c, ReleaseNode)]
        if last or waits:
            assert released == [], f"the only node, or one of a job that waits, left: {commands}"
        else:
            assert released == [ReleaseNode(node_id, job_id, released[0].keep)], commands
            assert node_id not in self.machine.jobs[job_id].nodes

    def end(self, job_id: str) -> None:
        held = {n for n, owner in self.owner.items() if owner == job_id}
        del self.jobs[job_id]
        commands = self.send(JobEnded(job_id))
        released = [c for c in commands if isinstance(c, DeleteNode | ResetNode)]
        kind = DeleteNode if self.config.release == "delete" else ResetNode
        assert all(isinstance(c, kind) for c in released), commands
        assert {c.node_id for c in released} == held, "a job's end released other nodes"

    def restart(self) -> None:
        idle = set(self.types) - set(self.owner)
        commands = self.send(RestartCluster())
        deleted = {c.node_id for c in commands if isinstance(c, DeleteNode)}
        assert deleted == idle, "restart must replace exactly the nodes without a job"

    def tick(self) -> None:
        deadline = self.clock.now() - self.config.boot_timeout_s
        stuck = {n for n, since in self.booting.items() if since <= deadline}
        commands = self.send(ClusterTickEvent())
        deleted = {c.node_id for c in commands if isinstance(c, DeleteNode)}
        assert deleted == stuck, "a tick must give up exactly the nodes booting too long"

    def look(self) -> None:
        commands = self.send(MachinesLeft(frozenset(self.deleting)))
        assert all(isinstance(c, StartNode) for c in commands), commands
        assert self.machine.leaving == self.deleting

    def settle(self) -> None:
        """End every job, finish every delete and boot, until nothing is left to do."""
        for _ in range(20):
            if self.machine.leaving:
                self.deleting.clear()
                self.look()
            elif self.jobs:
                for job_id in sorted(self.jobs):
                    self.end(job_id)
            elif self.booting:
                for node_id in sorted(self.booting):
                    if node_id in self.booting:
                        self.boot(node_id)
            else:
                return
        pytest.fail("the cluster kept booting nodes after every job ended")

    # Carrying out commands and checking the rules ----------------------------------------
    def send(self, event: ClusterEvent) -> list[ClusterCommand]:
        commands = self.machine.handle(event)
        self.carry_out(commands)
        return commands

    def carry_out(self, commands: list[ClusterCommand]) -> None:
        for command in commands:
            match command:
                case StartNode(node_id, node_type):
                    assert node_id not in self.types, f"{node_id} started while it exists"
                    assert node_id not in self.deleting, f"{node_id} started while deleted"
                    assert node_type in self.config.catalog
                    self.types[node_id] = node_type
                    self.booting[node_id] = self.clock.now()
                case DeleteNode(node_id):
                    assert node_id in self.types, f"{node_id} deleted but does not exist"
                    del self.types[node_id]
                    self.booting.pop(node_id, None)
                    self.owner.pop(node_id, None)
                    self.deleting.add(node_id)
                case ReleaseNode(node_id, job_id, keep):
                    assert self.owner.get(node_id) == job_id, f"{node_id} released from {job_id}"
                    del self.owner[node_id]
                    if keep:
                        self.booting[node_id] = self.clock.now()
                    else:
                        del self.types[node_id]
                        self.deleting.add(node_id)
                case ResetNode(node_id):
                    assert node_id in self.types, f"{node_id} reset but does not exist"
                    assert node_id not in self.booting, f"{node_id} reset while booting"
                    self.owner.pop(node_id, None)
                    self.booting[node_id] = self.clock.now()
                case AssignNodes(job, node_ids, workers):
                    assert len(workers) == len(node_ids), "a node's share is missing"
                    assert job.job_id in self.jobs, f"nodes assigned to {job.job_id}, not running"
                    assert len(set(node_ids)) == len(node_ids), f"{node_ids} names a node twice"
                    for node_id in node_ids:
                        assert node_id in self.types, f"{node_id} assigned but does not exist"
                        assert node_id not in self.booting, f"{node_id} assigned while booting"
                        assert node_id not in self.owner, (
                            f"{node_id} assigned to {job.job_id} while on {self.owner[node_id]}"
                        )
                        assert slots_on(self.types[node_id], job) > 0, f"{job} fits no {node_id}"
                    for node_id, share in zip(node_ids, workers, strict=True):
                        assert 1 <= share <= slots_on(self.types[node_id], job), (
                            f"{node_id} was given {share} workers"
                        )
                        self.owner[node_id] = job.job_id
        self.check()

    def check(self) -> None:
        machine = self.machine
        nodes = machine.nodes
        assert set(nodes) == set(self.types), "the machine's nodes and the commands disagree"
        assert {n for n, node in nodes.items() if node.state is NodeState.BOOTING} == set(
            self.booting
        )
        assert all(node.node_type == self.types[n] for n, node in nodes.items())
        assert {n: node.job_id for n, node in nodes.items() if node.job_id} == self.owner
        assert set(machine.jobs) == set(self.jobs)
        on_jobs = Counter(n for job in machine.jobs.values() for n in job.nodes)
        assert all(count == 1 for count in on_jobs.values()), "a node is on two jobs"
        # A look may be stale, never short: a machine the cluster let go counts until gone.
        assert self.deleting <= machine.leaving
        if self.config.max_nodes is not None:
            # At every moment, machines being deleted included: they are still billed.
            assert len(self.types) + len(self.deleting) <= self.config.max_nodes
        machine.validate()


def _nodes_of(command: ClusterCommand) -> tuple[str, ...]:
    if isinstance(command, AssignNodes):
        return command.node_ids
    return (command.node_id,)


@given(cluster_scenarios())
def test_cluster_machine_keeps_its_rules_and_its_standby_under_random_events(
    scenario: tuple[ClusterConfig, list[Step]],
):
    config, steps = scenario
    harness = ClusterHarness(config)
    harness.restart()
    for step in steps:
        harness.clock.advance(step.after)
        harness.act(step.action)

    harness.settle()
    standby_size = sum(group.count for group in config.standby.nodes)
    if config.max_nodes is not None and config.max_nodes < standby_size:
        return
    for group in config.standby.nodes:
        idle = sum(
            1
            for node in harness.machine.nodes.values()
            if node.state is NodeState.READY and node.node_type == group.node_type
        )
        if config.release == "delete":
            assert idle == group.count, f"standby wants {group.count} {group.node_type.name}"
        else:
            assert idle >= group.count, f"standby wants {group.count} {group.node_type.name}"


# Scheduling -----------------------------------------------------------------------------
@given(planning_cases())
def test_plan_job_joins_ready_nodes_and_starts_just_enough(case):
    config, nodes, job = case
    plan = plan_job(config, nodes, job)
    by_id = {node.node_id: node for node in nodes}

    assert len(set(plan.join_now)) == len(plan.join_now)
    joined = [by_id[n] for n in plan.join_now]
    assert all(node.state is NodeState.READY for node in joined), "only idle ready nodes join"
    slots = [slots_on(node.node_type, job) for node in joined]
    assert all(s > 0 for s in slots), "a node the job does not fit joined it"
    workers = min(sum(slots), job.parallelism)
    assert plan.workers_now == workers
    assert plan.cpus_now == workers * job.func_cpu

    assert plan.node_type == next(t for t in config.catalog if slots_on(t, job) > 0)
    per_node = slots_on(plan.node_type, job)
    covered = sum(slots) + plan.new_nodes_for_job * per_node
    per_job = config.max_nodes_per_job
    if per_job is not None:
        assert len(joined) + plan.new_nodes_for_job <= per_job, "more nodes than a job may have"
    capped = per_job is not None and len(joined) + plan.new_nodes_for_job == per_job
    if not capped:
        assert covered >= job.parallelism, "joined and new nodes must reach the parallelism"
    if plan.new_nodes_for_job:
        assert covered - per_node < job.parallelism, "one new node fewer would do"
        left_out = [
            n
            for n in nodes
            if n.state is NodeState.READY
            and n.node_id not in plan.join_now
            and slots_on(n.node_type, job) > 0
        ]
        assert left_out == [], "new nodes start while a ready node that fits sits idle"
    if slots:
        assert sum(slots) - min(slots) < job.parallelism, "a joined node is not needed"
    assert all(count > 0 for count in plan.starts.values())
    assert set(plan.starts) <= {t.name for t in config.catalog}


@given(planning_cases(in_standby=True))
def test_plan_job_in_standby_starts_new_nodes_and_replaces_what_it_takes_if_refilling(case):
    config, nodes, job = case
    plan = plan_job(config, nodes, job)
    by_id = {node.node_id: node for node in nodes}
    # With refill, each standby node taken is replaced; without, busy nodes still count.
    taken = plan.join_now if config.refill_standby else ()
    expected = Counter(by_id[n].node_type.name for n in taken)
    expected[plan.node_type.name] += plan.new_nodes_for_job
    assert Counter(plan.starts) == +expected
    assert plan.nodes_to_start == plan.new_nodes_for_job + len(taken)


@given(start_cases())
def test_nodes_to_start_fills_the_room_under_the_cap_jobs_first(case):
    config, nodes, wants = case
    starts = nodes_to_start(config, nodes, wants)
    uncapped = nodes_to_start(config.model_copy(update={"max_nodes": None}), nodes, wants)
    assert config.max_nodes is not None
    room = max(0, config.max_nodes - len(nodes))
    assert sum(starts.values()) == min(room, sum(uncapped.values()))
    assert all(count <= uncapped.get(name, 0) for name, count in starts.items())
    supply = Counter(n.node_type.name for n in nodes if n.state is not NodeState.BUSY)
    for_jobs = {name: max(0, want - supply[name]) for name, want in wants.items()}
    served = sum(min(starts.get(name, 0), need) for name, need in for_jobs.items())
    assert served == min(room, sum(for_jobs.values())), "standby got room that jobs needed"


# Kill plans -----------------------------------------------------------------------------
@given(kill_plan_cases())
def test_kill_plan_keeps_disjoint_cpus_of_the_jobs_image_and_kills_the_rest(case: KillPlanCase):
    available = [c for c in case.containers if c.image == case.image and c.running]
    if not available:
        with pytest.raises(InvalidRequestError):
            plan_containers(
                case.node_cpus, case.containers, image=case.image, func_cpu=case.func_cpu
            )
        return
    plan = plan_containers(
        case.node_cpus,
        case.containers,
        image=case.image,
        func_cpu=case.func_cpu,
        max_workers=case.max_workers,
    )
    kept = [k.container for k in plan.keep]
    assert all(c.image == case.image and c.running for c in kept)
    cap = case.node_cpus // case.func_cpu
    if case.max_workers is not None:
        cap = min(cap, case.max_workers)
    assert len(plan.keep) == min(cap, len(available))
    used: set[int] = set()
    for k in plan.keep:
        assert len(k.cpuset) == case.func_cpu
        assert k.cpuset <= set(range(case.node_cpus)), "a container got a CPU the node lacks"
        assert not k.cpuset & used, "two containers share a CPU"
        used |= k.cpuset
    names = Counter(c.name for c in (*kept, *plan.kill))
    assert names == Counter(c.name for c in case.containers), "keep and kill must partition"


# InputMachine ---------------------------------------------------------------------------
FUNC_RAM_GB = 1.0
NODE_GB = 2.0


class InputHarness:
    """Plays the store's queue and the workers around one InputMachine, and checks after
    every step that no input is lost, none is recorded twice and no try is overspent."""

    def __init__(self, scenario: InputScenario) -> None:
        self.scenario = scenario
        self.clock = ManualClock()
        self.machine = InputMachine(
            scenario.n_inputs,
            retries=scenario.retries,
            max_returns=scenario.max_returns,
            grow_memory=scenario.grow_memory,
        )
        self.needs: dict[int, float] = {}  # memory a queued input was grown to (GB)
        self.memory: dict[str, float] = {}  # each worker's memory, as its node gave it
        self.queue: list[int] = list(range(scenario.n_inputs))  # claimable, in order
        self.store_leases: dict[int, tuple[str, float]] = {}  # delivered: to whom, until
        self._ids = itertools.count()
        self.nodes = [self._new_id("node") for _ in range(scenario.nodes)]
        self.workers: dict[str, str] = {}  # live workers and their nodes
        self.holds: dict[str, list[int]] = {}  # what each worker believes it was given
        self.handed: dict[str, list[int]] = {}  # handed out to each node, no worker's yet
        self.running: dict[str, int] = {}
        for k in range(scenario.workers):
            self._spawn(self.nodes[k % len(self.nodes)])
        self.outcomes: dict[int, InputStatus] = {}
        self.reported: set[int] = set()  # inputs some worker reported a success for
        self.finished_as: list[JobState] = []
        self.canceled = False
        if scenario.reused or scenario.skipped:  # the job resumes another
            not_here = {*scenario.reused, *scenario.skipped}
            self.queue = [i for i in self.queue if i not in not_here]
            self.reported |= set(scenario.reused)  # they succeeded in the job resumed
            self.send(Resumed(scenario.reused, scenario.skipped))

    def act(self, action: object) -> None:
        match action:
            case Claim(worker, count, lease_s):
                taken = self.queue[:count]
                if taken:
                    del self.queue[:count]
                    self.claim(pick(list(self.workers), worker), taken, lease_s)
            case HandOut(node, count):
                self.hand_out(pick(self.nodes, node), count)
            case TakeHanded(worker, count):
                takers = [w for w, node in self.workers.items() if self.handed.get(node)]
                if takers:
                    self.take_handed(pick(takers, worker), count)
            case Redeliver(index, worker, lease_s):
                now = self.clock.now()
                expired = sorted(i for i, (_, until) in self.store_leases.items() if until <= now)
                if expired:
                    self.claim(pick(list(self.workers), worker), [pick(expired, index)], lease_s)
            case Start(worker):
                ready = [w for w in self.workers if self.holds[w] and w not in self.running]
                if ready:
                    self.start(pick(ready, worker))
            case TimeOut(worker):
                if self.running:
                    stopped = pick(list(self.running), worker)
                    index = self.running[stopped]
                    self._spawn(self._remove(stopped))
                    self.send(InputTimedOut(stopped, index))
            case Succeed(worker):
                if self.running:
                    self.report(pick(list(self.running), worker), succeeded=True)
            case Raise(worker):
                if self.running:
                    self.report(pick(list(self.running), worker), succeeded=False)
            case CrashWorker(worker):
                gone = pick(list(self.workers), worker)
                running = self.running.get(gone)
                self._spawn(self._remove(gone))
                self.send(WorkerDied(gone, running))
            case RunOutOfMemory(worker):
                if self.running:
                    stopped = pick(list(self.running), worker)
                    index = self.running[stopped]
                    memory = self.memory.get(stopped, FUNC_RAM_GB)
                    self._spawn(self._remove(stopped))
                    self.send(WorkerDied(stopped, index, True, memory, NODE_GB))
            case LoseNode(index):
                slot = index % len(self.nodes)
                lost, self.nodes[slot] = self.nodes[slot], self._new_id("node")
                for gone in [w for w, node in self.workers.items() if node == lost]:
                    self._remove(gone)
                    self._spawn(self.nodes[slot])
                self.handed.pop(lost, None)
                self.send(NodeLost(lost))
            case Renew(worker, lease_s):
                renewing = pick(list(self.workers), worker)
                until = self.clock.now() + lease_s
                for i, (holder, _) in list(self.store_leases.items()):
                    if holder == renewing:
                        self.store_leases[i] = (holder, until)
            case Cancel():
                self.canceled = self.canceled or not self.machine.state.finished
                self.send(CancelJob())
            case _:
                raise AssertionError(f"unknown action {action!r}")

    # What main_service and workers do ----------------------------------------------------
    def hand_out(self, node: str, count: int) -> None:
        """Hand queued inputs to a node with workers, as main_service does with its
        assignment: only inputs it holds as queued, while the job runs."""
        if self.machine.state.finished or node not in self.workers.values():
            return
        queued = [i for i in self.queue if self.machine.inputs[i].status is InputStatus.QUEUED]
        taken = queued[:count]
        if taken:
            self.queue = [i for i in self.queue if i not in taken]
            self.handed.setdefault(node, []).extend(taken)
            self.send(InputsHandedOut(node, tuple(taken)))

    def take_handed(self, worker: str, count: int) -> None:
        node = self.workers[worker]
        taken, self.handed[node] = self.handed[node][:count], self.handed[node][count:]
        self.claim(worker, taken, None)

    def claim(self, worker: str, indices: list[int], lease_s: float | None) -> None:
        """The worker claims the inputs: from the Store under a lease, or (`lease_s`
        None) from those handed out to its node."""
        recorded = {i for i in indices if i in self.outcomes}
        job_over = bool(self.finished_as)
        for i in indices:
            if lease_s is not None:
                self.store_leases[i] = (worker, self.clock.now() + lease_s)
            if i not in self.holds[worker] and self.running.get(worker) != i:
                self.holds[worker].append(i)
        # Its node gives the worker the most memory any input it takes needs, for good.
        needs = [self.needs[i] for i in indices if i in self.needs]
        if needs:
            self.memory[worker] = max(self.memory.get(worker, FUNC_RAM_GB), *needs)
        memory = self.memory.get(worker)
        node = self.workers[worker]
        commands = self.send(InputsClaimed(worker, node, tuple(indices), memory))
        discarded = {i for c in commands if isinstance(c, Discard) for i in c.indices}
        # Taking an input over from an expired holder counts as a return; past the bound
        # the input fails as lost right here, and the new holder must not run it either.
        lost_now = {c.index for c in commands if isinstance(c, RecordFailure)}
        assert discarded == (set(indices) if job_over else recorded | lost_now), (
            "exactly the claimed inputs that are finished are discarded"
        )

    def start(self, worker: str) -> None:
        self.running[worker] = self.holds[worker].pop(0)

    def report(self, worker: str, *, succeeded: bool) -> None:
        index = self.running.pop(worker)
        if succeeded:
            self.reported.add(index)
            if self.store_leases.get(index, ("",))[0] == worker:
                del self.store_leases[index]  # the worker acks its delivery
            self.send(InputsSucceeded(worker, (index,)))
        else:
            self.send(InputRaised(worker, index))

    def drain(self) -> None:
        """Run everything that is left to success, as healthy workers would."""
        for _ in range(1000):
            if self.machine.state.finished:
                return
            if self.running:
                self.report(next(iter(self.running)), succeeded=True)
            elif holder := next((w for w in self.workers if self.holds[w]), None):
                self.start(holder)
            elif taker := next((w for w, n in self.workers.items() if self.handed.get(n)), None):
                self.take_handed(taker, 3)
            elif self.queue:
                taken, self.queue = self.queue[:3], self.queue[3:]
                self.claim(next(iter(self.workers)), taken, 60.0)
            else:
                pytest.fail("the job is unfinished, yet nothing is queued or held")
        pytest.fail("the job did not finish while draining")

    # Carrying out commands and checking the rules ----------------------------------------
    def send(self, event: InputEvent) -> list[InputCommand]:
        commands = self.machine.handle(event)
        for command in commands:
            match command:
                case Requeue(indices):
                    for i in indices:
                        self.store_leases.pop(i, None)
                        if i not in self.queue:
                            self.queue.append(i)
                case Grow(index, memory_gb):
                    self.store_leases.pop(index, None)
                    self.needs[index] = memory_gb
                    if index not in self.queue:
                        self.queue.append(index)
                case Discard(worker, indices):
                    for i in indices:
                        if worker in self.holds and i in self.holds[worker]:
                            self.holds[worker].remove(i)
                        if self.store_leases.get(i, ("",))[0] == worker:
                            del self.store_leases[i]
                case KillWorker(worker, reason):
                    assert worker in self.workers, f"kill of {worker}, which is gone"
                    assert reason
                    self._spawn(self._remove(worker))
                case RecordFailure():
                    pass
                case FinishJob(state):
                    self.finished_as.append(state)
        self.check(event, commands)
        return commands

    def check(self, event: InputEvent, commands: list[InputCommand]) -> None:
        machine = self.machine
        for i, status in self.outcomes.items():
            assert machine.outcomes.get(i) is status, f"input {i}'s outcome changed"
        new = {i: s for i, s in machine.outcomes.items() if i not in self.outcomes}
        failures = [c for c in commands if isinstance(c, RecordFailure)]
        assert sorted(c.index for c in failures) == sorted(
            i for i, s in new.items() if s is InputStatus.FAILED
        ), "every input failed for good gets exactly one RecordFailure"
        for c in failures:
            assert c.attempts == machine.inputs[c.index].attempts
        for i, status in new.items():
            assert status is not InputStatus.SUCCEEDED or i in self.reported
            assert status is not InputStatus.CANCELED or isinstance(event, CancelJob | Resumed)
        self.outcomes.update(new)
        for c in commands:
            if isinstance(c, Requeue):
                for i in c.indices:
                    assert i not in self.outcomes, f"finished input {i} was requeued"
                    assert machine.inputs[i].status is InputStatus.QUEUED
            if isinstance(c, Grow):
                record = machine.inputs[c.index]
                assert self.scenario.grow_memory, "memory grows only when the job asks"
                assert record.status is InputStatus.QUEUED
                assert c.memory_gb == next_memory_gb(record.ran_out[-1], NODE_GB)
                assert c.memory_gb <= NODE_GB
            if isinstance(c, RecordFailure) and c.node_gb is not None:
                assert self.scenario.grow_memory
                assert c.ran_out[-1] >= c.node_gb, "failed for the whole node, yet had less"

        for i, record in enumerate(machine.inputs):
            assert record.attempts <= self.scenario.retries + 1, f"input {i}: {record}"
            if i in self.outcomes:
                continue
            holder = record.worker
            held = (
                holder in self.workers
                and record.status in (InputStatus.LEASED, InputStatus.RUNNING)
                and (i in self.holds[holder] or self.running.get(holder) == i)
            )
            handed = any(
                holder == handed_to(node) and i in inputs for node, inputs in self.handed.items()
            )
            assert i in self.queue or held or handed, f"input {i} is lost: {record}"

        assert len(self.finished_as) <= 1, f"FinishJob came {len(self.finished_as)} times"
        if machine.state.finished:
            assert self.finished_as == [machine.state]
        else:
            assert self.finished_as == []

    def _new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def _spawn(self, node: str) -> None:
        worker = self._new_id("worker")
        self.workers[worker] = node
        self.holds[worker] = []

    def _remove(self, worker: str) -> str:
        self.holds.pop(worker)
        self.running.pop(worker, None)
        return self.workers.pop(worker)


def run_inputs(scenario: InputScenario) -> InputHarness:
    harness = InputHarness(scenario)
    for step in scenario.steps:
        harness.clock.advance(step.after)
        harness.act(step.action)
    if not harness.canceled:
        harness.drain()
    machine = harness.machine
    assert machine.state.finished
    assert sorted(harness.outcomes) == list(range(scenario.n_inputs)), "an input never finished"
    assert all(record.status.finished for record in machine.inputs)
    assert harness.finished_as == [machine.state], "FinishJob must come exactly once"
    ended = set(harness.outcomes.values())
    if harness.canceled:
        assert machine.state is JobState.CANCELED
    elif InputStatus.FAILED in ended:
        assert machine.state is JobState.FAILED
    elif InputStatus.CANCELED in ended:  # skipped inputs, which never run
        assert machine.state is JobState.CANCELED
        assert sorted(i for i, s in harness.outcomes.items() if s is InputStatus.CANCELED) == list(
            scenario.skipped
        )
    else:
        assert machine.state is JobState.SUCCEEDED
    return harness


@given(input_scenarios(redeliveries=False))
def test_input_machine_loses_nothing_and_records_each_input_once(scenario: InputScenario):
    run_inputs(scenario)


@given(input_scenarios())
def test_input_machine_survives_the_store_redelivering_expired_leases(scenario: InputScenario):
    run_inputs(scenario)
