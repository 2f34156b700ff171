"""The cluster scheduler as a state machine, walked through the seed's story and beyond."""

import pytest

from burla.core.clock import ManualClock
from burla.core.cluster import (
    AssignNodes,
    ClusterMachine,
    DeleteNode,
    JobBacklog,
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
    Tick,
)
from burla.core.errors import InvalidRequestError
from burla.core.models import (
    ClusterConfig,
    JobSpec,
    Node,
    NodeState,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)

N96 = NodeType(name="n2-standard-96", cpus=96, ram_gb=384)


def config(count: int = 5, **kwargs) -> ClusterConfig:
    standby = StandbyDefinition(nodes=(StandbyGroup(node_type=N96, count=count),))
    return ClusterConfig(standby=standby, **kwargs)


def in_standby(cfg: ClusterConfig, clock: ManualClock | None = None) -> ClusterMachine:
    machine = ClusterMachine(cfg, clock or ManualClock())
    for command in machine.handle(RestartCluster()):
        assert isinstance(command, StartNode)
        machine.handle(NodeBooted(command.node_id))
    return machine


def of(kind, commands):
    return [c for c in commands if isinstance(c, kind)]


def test_restart_enters_standby():
    machine = in_standby(config())
    assert machine.idle(N96.name) == 5
    assert len(machine.nodes) == 5


def test_seed_story_end_to_end():
    machine = in_standby(config())
    standby_ids = sorted(machine.nodes)
    commands = machine.handle(JobSubmitted(JobSpec(job_id="job", n_inputs=1000)))
    (assign,) = of(AssignNodes, commands)
    assert sorted(assign.node_ids) == standby_ids
    starts = of(StartNode, commands)
    assert len(starts) == 11

    joined = []
    for start in starts:
        for command in machine.handle(NodeBooted(start.node_id)):
            assert isinstance(command, AssignNodes)
            joined += command.node_ids
    assert joined == [s.node_id for s in starts[:6]]  # the first 6 ready ones join
    assert machine.idle(N96.name) == 5  # standby whole again while the job runs

    commands = machine.handle(JobEnded("job"))
    assert sorted(c.node_id for c in of(DeleteNode, commands)) == sorted(standby_ids + joined)
    assert of(StartNode, commands) == []  # replacements were started with the job
    assert machine.idle(N96.name) == 5
    assert len(machine.nodes) == 5


def test_two_jobs_never_share_a_node_and_join_in_order():
    machine = in_standby(config(count=1))
    first = machine.handle(JobSubmitted(JobSpec(job_id="a", n_inputs=192)))
    second = machine.handle(JobSubmitted(JobSpec(job_id="b", n_inputs=96)))
    assert of(AssignNodes, second) == []  # the only idle node went to "a"
    booting = [c.node_id for c in of(StartNode, first) + of(StartNode, second)]
    owners = []
    for node_id in booting:
        for command in machine.handle(NodeBooted(node_id)):
            owners.append(command.job.job_id)
    assert owners == ["a", "b"]
    busy = [n.job_id for n in machine.nodes.values() if n.state is NodeState.BUSY]
    assert sorted(busy) == ["a", "a", "b"]
    assert machine.idle(N96.name) == 1


def test_lost_busy_node_is_replaced_and_the_replacement_joins_the_job():
    machine = in_standby(config(count=1))
    (assign,) = of(AssignNodes, machine.handle(JobSubmitted(JobSpec(job_id="j", n_inputs=96))))
    commands = machine.handle(NodeFailed(assign.node_ids[0]))
    assert of(DeleteNode, commands) == [DeleteNode(assign.node_ids[0])]
    (replacement,) = of(StartNode, commands)
    # The standby replacement started with the job boots first and joins in its place.
    standby_start = next(
        n.node_id for n in machine.nodes.values() if n.node_id != replacement.node_id
    )
    (rejoin,) = machine.handle(NodeBooted(standby_start))
    assert rejoin == AssignNodes(JobSpec(job_id="j", n_inputs=96), (standby_start,), (96,))
    assert machine.handle(NodeBooted(replacement.node_id)) == []
    assert machine.idle(N96.name) == 1


def test_a_job_that_loses_its_node_takes_an_idle_node_of_its_type_at_once():
    """The job was placed on a node of another type than its own (the first that fit);
    when that node is lost, an idle node of the job's type is there: the job takes it
    rather than wait for a replacement that would never be its type."""
    tiny = NodeType(name="tiny", cpus=1, ram_gb=1)
    highmem = NodeType(name="highmem", cpus=1, ram_gb=1)
    standby = StandbyDefinition(
        nodes=(StandbyGroup(node_type=tiny, count=1), StandbyGroup(node_type=highmem, count=1))
    )
    machine = ClusterMachine(ClusterConfig(standby=standby, refill_standby=False), ManualClock())
    starts = machine.handle(RestartCluster())
    by_type = {start.node_type.name: start.node_id for start in of(StartNode, starts)}
    machine.handle(NodeBooted(by_type["highmem"]))  # ready first: the job goes there
    job = JobSpec(job_id="j", n_inputs=1, func_ram=0.5)
    (assign,) = of(AssignNodes, machine.handle(JobSubmitted(job)))
    assert assign.node_ids == (by_type["highmem"],)
    machine.handle(NodeBooted(by_type["tiny"]))
    commands = machine.handle(NodeFailed(by_type["highmem"]))
    assert of(AssignNodes, commands) == [AssignNodes(job, (by_type["tiny"],), (1,))]
    assert machine.jobs["j"].want == 0


def test_boot_timeout_gives_up_on_a_stuck_node_and_starts_another():
    clock = ManualClock()
    machine = ClusterMachine(config(count=1, boot_timeout_s=300), clock)
    (first,) = machine.handle(RestartCluster())
    clock.advance(299)
    assert machine.handle(Tick()) == []
    clock.advance(1)
    commands = machine.handle(Tick())
    assert commands[0] == DeleteNode(first.node_id)
    (again,) = of(StartNode, commands)
    assert again.node_id != first.node_id


def test_recycle_mode_with_a_cap_of_one_node_runs_jobs_one_after_another():
    machine = in_standby(config(count=1, max_nodes=1, release="recycle"))
    (node_id,) = machine.nodes
    first = machine.handle(JobSubmitted(JobSpec(job_id="a", n_inputs=1000)))
    assert first == [AssignNodes(JobSpec(job_id="a", n_inputs=1000), (node_id,), (96,))]
    assert machine.handle(JobSubmitted(JobSpec(job_id="b", n_inputs=10))) == []
    assert machine.handle(JobEnded("a")) == [ResetNode(node_id)]
    (assign,) = machine.handle(NodeBooted(node_id))
    assert assign.job.job_id == "b"
    assert machine.handle(JobEnded("b")) == [ResetNode(node_id)]
    assert machine.handle(NodeBooted(node_id)) == []
    assert machine.idle(N96.name) == 1


def test_extra_idle_nodes_beyond_standby_are_deleted_when_they_boot():
    machine = in_standby(config(count=1, release="recycle"))
    commands = machine.handle(JobSubmitted(JobSpec(job_id="a", n_inputs=96)))
    (start,) = of(StartNode, commands)
    machine.handle(NodeBooted(start.node_id))  # the new standby node
    (reset,) = machine.handle(JobEnded("a"))
    assert machine.handle(NodeBooted(reset.node_id)) == [DeleteNode(reset.node_id)]
    assert machine.idle(N96.name) == 1


def test_restart_replaces_idle_nodes_and_keeps_busy_ones():
    machine = in_standby(config(count=2))
    (assign,) = of(AssignNodes, machine.handle(JobSubmitted(JobSpec(job_id="j", n_inputs=50))))
    for node in list(machine.nodes.values()):
        if node.state is NodeState.BOOTING:
            machine.handle(NodeBooted(node.node_id))
    idle_before = {n.node_id for n in machine.nodes.values() if n.state is NodeState.READY}
    commands = machine.handle(RestartCluster(config(count=3)))
    assert {c.node_id for c in of(DeleteNode, commands)} == idle_before
    assert len(of(StartNode, commands)) == 3
    assert machine.nodes[assign.node_ids[0]].job_id == "j"


def test_a_job_id_cannot_run_twice():
    machine = in_standby(config(count=1))
    machine.handle(JobSubmitted(JobSpec(job_id="j", n_inputs=1)))
    with pytest.raises(InvalidRequestError, match="already running"):
        machine.handle(JobSubmitted(JobSpec(job_id="j", n_inputs=1)))


def test_reports_about_unknown_nodes_change_nothing():
    machine = in_standby(config(count=1))
    before = dict(machine.nodes)
    assert machine.handle(NodeBooted("nope")) == []
    assert machine.handle(NodeFailed("nope")) == []
    assert machine.handle(JobEnded("nope")) == []
    assert machine.nodes == before


def test_without_refill_busy_nodes_count_toward_standby_and_waiting_jobs_start_nodes():
    machine = in_standby(config(count=1, max_nodes=3, release="recycle", refill_standby=False))
    (node_id,) = machine.nodes
    first = machine.handle(JobSubmitted(JobSpec(job_id="a", n_inputs=96)))
    assert first == [AssignNodes(JobSpec(job_id="a", n_inputs=96), (node_id,), (96,))]
    second = machine.handle(JobSubmitted(JobSpec(job_id="b", n_inputs=96)))
    (start,) = of(StartNode, second)  # "b" waits, so a node starts for it
    (assign,) = machine.handle(NodeBooted(start.node_id))
    assert assign.job.job_id == "b"
    assert machine.handle(JobEnded("a")) == [ResetNode(node_id)]
    # "b" still holds a node, which counts toward standby: the first one is surplus.
    assert machine.handle(NodeBooted(node_id)) == [DeleteNode(node_id)]
    assert machine.handle(JobEnded("b")) == [ResetNode(start.node_id)]
    assert machine.handle(NodeBooted(start.node_id)) == []
    assert set(machine.nodes) == {start.node_id}


def test_each_node_gets_its_share_of_the_parallelism():
    machine = in_standby(config(count=3))
    job = JobSpec(job_id="j", n_inputs=1000, max_parallelism=150)
    (assign,) = of(AssignNodes, machine.handle(JobSubmitted(job)))
    assert assign.workers == (96, 54)
    small = JobSpec(job_id="k", n_inputs=10)
    (assign,) = of(AssignNodes, machine.handle(JobSubmitted(small)))
    assert assign.workers == (10,)


def test_a_node_id_is_never_given_twice_adopted_nodes_included():
    booting = Node(node_id="node-000001", node_type=N96, state=NodeState.BOOTING, since=0.0)
    machine = ClusterMachine(config(count=1), ManualClock(), nodes=[booting])
    # The adopted node fails while its machine may still exist: its replacement gets a
    # new id, not node-000001 again.
    (start,) = of(StartNode, machine.handle(NodeFailed("node-000001")))
    assert start.node_id == "node-000002"
    (again,) = of(StartNode, machine.handle(NodeFailed("node-000002")))
    assert again.node_id == "node-000003"


def test_no_node_gets_the_id_of_a_machine_still_leaving():
    # Found at start and not taken on (being deleted): node-000005 and node-000007.
    machine = ClusterMachine(config(count=2), ManualClock(), leaving=["node-000005", "node-000007"])
    starts = of(StartNode, machine.handle(RestartCluster()))
    assert {s.node_id for s in starts} == {"node-000008", "node-000009"}
    # A machine made elsewhere shows up leaving later: its id is skipped too.
    machine.handle(MachinesLeft(frozenset({"node-000005", "node-000010"})))
    (start,) = of(StartNode, machine.handle(NodeFailed("node-000008")))
    assert start.node_id == "node-000011"


def test_a_drained_node_leaves_its_job_but_the_last_one_stays():
    machine = in_standby(config(count=2, refill_standby=False))
    job = JobSpec(job_id="j", n_inputs=192)
    (assign,) = of(AssignNodes, machine.handle(JobSubmitted(job)))
    first, second = assign.node_ids
    # Without refill, busy nodes count toward standby: it lacks the node once it leaves.
    assert machine.handle(NodeDrained(first, "j")) == [ReleaseNode(first, "j", keep=True)]
    assert machine.nodes[first].state is NodeState.BOOTING
    assert machine.handle(NodeDrained(second, "j")) == []  # the job's last node stays
    assert machine.handle(NodeDrained(first, "j")) == []  # no longer on the job
    assert machine.handle(NodeBooted(first)) == []
    assert machine.idle(N96.name) == 1
    ended = machine.handle(JobEnded("j"))
    assert of(DeleteNode, ended) == [DeleteNode(second)]
    assert len(of(StartNode, ended)) == 1  # standby: the released node and a new one


def test_a_drained_node_beyond_standby_is_deleted_and_standby_stays_whole():
    machine = in_standby(config(count=5))
    commands = machine.handle(JobSubmitted(JobSpec(job_id="job", n_inputs=1000)))
    (assign,) = of(AssignNodes, commands)
    for start in of(StartNode, commands):
        machine.handle(NodeBooted(start.node_id))  # 6 join the job, 5 refill standby
    drained = assign.node_ids[0]
    commands = machine.handle(NodeDrained(drained, "job"))
    assert commands == [ReleaseNode(drained, "job", keep=False)]
    assert drained not in machine.nodes
    assert drained in machine.leaving
    assert machine.idle(N96.name) == 5


def test_a_node_of_a_job_that_waits_for_nodes_is_not_released():
    machine = in_standby(config(count=2))
    commands = machine.handle(JobSubmitted(JobSpec(job_id="job", n_inputs=400)))
    (assign,) = of(AssignNodes, commands)
    assert machine.jobs["job"].want > 0
    assert machine.handle(NodeDrained(assign.node_ids[0], "job")) == []
    assert machine.nodes[assign.node_ids[0]].job_id == "job"


def test_a_node_ready_once_no_input_waits_stays_out_of_the_job():
    machine = in_standby(config(count=1))
    commands = machine.handle(JobSubmitted(JobSpec(job_id="job", n_inputs=300)))
    starts = [c.node_id for c in of(StartNode, commands)]
    assert machine.jobs["job"].want == 3
    machine.handle(JobBacklog("job", 10))  # 96 claimed, 10 still wait
    (joined,) = machine.handle(NodeBooted(starts[0]))
    assert joined.node_ids == (starts[0],)
    machine.handle(JobBacklog("job", 0))  # the job's nodes took every input
    assert of(AssignNodes, machine.handle(NodeBooted(starts[1]))) == []
    assert machine.jobs["job"].want == 0
    assert machine.nodes[starts[1]].job_id is None


def test_a_node_one_waiting_job_no_longer_needs_goes_to_the_next_that_waits():
    machine = in_standby(config(count=1, max_nodes=2))
    first = machine.handle(JobSubmitted(JobSpec(job_id="first", n_inputs=150)))
    (start,) = of(StartNode, first)  # the cap leaves room for one more node
    assert of(StartNode, machine.handle(JobSubmitted(JobSpec(job_id="second", n_inputs=96)))) == []
    assert machine.jobs["first"].want == 1
    assert machine.jobs["second"].want == 1
    machine.handle(JobBacklog("first", 0))  # its standby node took every input
    (joined,) = machine.handle(NodeBooted(start.node_id))
    assert joined.job.job_id == "second"
    assert machine.jobs["first"].want == machine.jobs["second"].want == 0


def test_a_job_without_nodes_takes_the_node_that_boots_however_empty_its_queue():
    machine = in_standby(config(count=0))
    commands = machine.handle(JobSubmitted(JobSpec(job_id="job", n_inputs=10)))
    (start,) = of(StartNode, commands)
    machine.handle(JobBacklog("job", 0))  # nothing waits, yet the job has no node at all
    (joined,) = machine.handle(NodeBooted(start.node_id))
    assert joined.node_ids == (start.node_id,)
