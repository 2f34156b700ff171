"""The input state machine: claims, attempts, returns, first result wins, cancel."""

import pytest

from burla.core.errors import InvariantError
from burla.core.inputs import (
    CancelJob,
    Discard,
    Failure,
    FinishJob,
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
    WorkerDied,
    handed_to,
)
from burla.core.models import JobState


def run(machine: InputMachine, worker: str, index: int) -> list:
    machine.handle(InputsClaimed(worker, "node", (index,)))
    return machine.handle(InputsSucceeded(worker, (index,)))


def test_every_input_succeeding_finishes_the_job_once():
    machine = InputMachine(3)
    machine.handle(InputsClaimed("w", "node", (0, 1, 2)))
    for index in range(3):
        commands = machine.handle(InputsSucceeded("w", (index,)))
    assert commands == [FinishJob(JobState.SUCCEEDED)]
    assert machine.state is JobState.SUCCEEDED
    assert machine.handle(InputsSucceeded("w", (0,))) == []


def test_first_result_wins():
    machine = InputMachine(2)
    run(machine, "w1", 0)
    machine.handle(InputsClaimed("w2", "node", (0,)))
    assert machine.outcomes == {0: InputStatus.SUCCEEDED}
    assert machine.handle(InputRaised("w2", 0)) == []
    assert machine.outcomes == {0: InputStatus.SUCCEEDED}


def test_claim_of_a_finished_input_is_discarded():
    machine = InputMachine(2)
    run(machine, "w1", 0)
    commands = machine.handle(InputsClaimed("w2", "node", (0, 1)))
    assert commands == [Discard("w2", (0,))]
    assert machine.inputs[1].status is InputStatus.LEASED


def test_exception_is_retried_then_recorded():
    machine = InputMachine(1, retries=1)
    machine.handle(InputsClaimed("w", "node", (0,)))
    assert machine.handle(InputRaised("w", 0)) == [Requeue((0,))]
    machine.handle(InputsClaimed("w", "node", (0,)))
    commands = machine.handle(InputRaised("w", 0))
    assert commands == [RecordFailure(0, Failure.RAISED, 2), FinishJob(JobState.FAILED)]


def test_worker_death_costs_the_running_input_a_try_and_returns_the_rest():
    machine = InputMachine(3, retries=0)
    machine.handle(InputsClaimed("w", "node", (0, 1, 2)))
    commands = machine.handle(WorkerDied("w", running=0))
    assert commands == [RecordFailure(0, Failure.WORKER_DIED, 1), Requeue((1,)), Requeue((2,))]
    assert machine.inputs[1].attempts == 0
    assert machine.inputs[1].status is InputStatus.QUEUED


def test_node_loss_returns_inputs_without_using_tries_but_only_so_often():
    machine = InputMachine(1, retries=0, max_returns=2)
    for lost in range(2):
        machine.handle(InputsClaimed(f"w{lost}", f"node{lost}", (0,)))
        assert machine.handle(NodeLost(f"node{lost}")) == [Requeue((0,))]
    assert machine.inputs[0].attempts == 0
    machine.handle(InputsClaimed("w9", "node9", (0,)))
    commands = machine.handle(NodeLost("node9"))
    assert commands == [RecordFailure(0, Failure.LOST, 0), FinishJob(JobState.FAILED)]


def test_reclaim_after_the_stores_lease_ran_out_moves_the_input_to_the_new_worker():
    machine = InputMachine(1)
    machine.handle(InputsClaimed("a", "node", (0,)))
    assert machine.inputs[0].returns == 0
    machine.handle(InputsClaimed("b", "node", (0,)))
    assert machine.inputs[0].worker == "b"
    assert machine.inputs[0].returns == 1, "the old holder counts as gone for it"
    assert machine.workers["a"].leased == set()
    assert machine.handle(InputsSucceeded("a", (0,))) == [FinishJob(JobState.SUCCEEDED)]


def test_cancel_kills_busy_workers_and_ends_the_job():
    machine = InputMachine(3)
    run(machine, "idle", 0)
    machine.handle(InputsClaimed("busy", "node", (1,)))
    commands = machine.handle(CancelJob())
    assert commands == [KillWorker("busy", "job canceled"), FinishJob(JobState.CANCELED)]
    assert machine.outcomes == {
        0: InputStatus.SUCCEEDED,
        1: InputStatus.CANCELED,
        2: InputStatus.CANCELED,
    }
    assert machine.handle(InputsClaimed("late", "node", (2,))) == [Discard("late", (2,))]
    assert machine.handle(InputsSucceeded("busy", (1,))) == []


def test_an_empty_job_is_finished_from_the_start():
    assert InputMachine(0).state is JobState.SUCCEEDED


def test_worker_death_reported_by_its_node_names_the_input_it_was_running():
    machine = InputMachine(2, retries=1)
    machine.handle(InputsClaimed("w", "node", (0, 1)))
    commands = machine.handle(WorkerDied("w", running=1))
    assert commands == [Requeue((0,)), Requeue((1,))]
    assert machine.inputs[1].attempts == 1
    assert machine.inputs[0].attempts == 0


def test_inputs_waiting_behind_a_crash_go_back_as_often_as_crashes_happen():
    """The input that crashed its worker uses its tries; the ones queued behind it at the
    same worker never ran, so however many crashes they wait through, none is lost."""
    machine = InputMachine(12, retries=1, max_returns=2)
    for culprit in range(10):
        machine.handle(InputsClaimed(f"w{culprit}", "node", (culprit, 10, 11)))
        commands = machine.handle(WorkerDied(f"w{culprit}", running=culprit))
        assert Requeue((10,)) in commands
        assert Requeue((11,)) in commands
    assert machine.inputs[10].returns == 0
    assert not machine.inputs[10].status.finished
    machine.handle(InputsClaimed("w", "node", (10, 11)))
    assert machine.handle(WorkerDied("w")) == [Requeue((10,)), Requeue((11,))]
    assert machine.inputs[10].returns == 1, "a crash without a culprit still counts"


def test_a_worker_stopped_out_of_memory_fails_the_input_it_ran_as_such():
    machine = InputMachine(2, retries=0)
    machine.handle(InputsClaimed("w", "node", (0, 1)))
    commands = machine.handle(WorkerDied("w", running=1, out_of_memory=True))
    assert commands == [Requeue((0,)), RecordFailure(1, Failure.OUT_OF_MEMORY, 1)]
    assert machine.inputs[1].failure is Failure.OUT_OF_MEMORY


def test_timeout_seen_by_the_node_uses_a_try_and_returns_the_workers_other_inputs():
    machine = InputMachine(2, retries=0)
    machine.handle(InputsClaimed("w", "node", (0, 1)))
    commands = machine.handle(InputTimedOut("w", 0))
    assert commands == [RecordFailure(0, Failure.TIMED_OUT, 1), Requeue((1,))]
    assert "w" not in machine.workers


def test_stopping_at_an_input_that_failed_fails_the_job_and_the_rest_never_run():
    machine = InputMachine(4)
    run(machine, "a", 0)
    machine.handle(InputsClaimed("b", "node", (1,)))
    machine.handle(InputRaised("b", 1))  # no retries: input 1 failed for good
    machine.handle(InputsClaimed("c", "node", (2,)))
    commands = machine.handle(CancelJob(failed=True))
    assert commands == [KillWorker("c", "job canceled"), FinishJob(JobState.FAILED)]
    assert machine.state is JobState.FAILED
    assert machine.outcomes == {
        0: InputStatus.SUCCEEDED,
        1: InputStatus.FAILED,
        2: InputStatus.CANCELED,
        3: InputStatus.CANCELED,
    }


def test_inputs_handed_out_are_the_nodes_until_its_workers_claim_them():
    machine = InputMachine(4, max_returns=0)
    assert machine.handle(InputsHandedOut("node-a", (0, 1, 2))) == []
    assert [r.status for r in machine.inputs] == [InputStatus.LEASED] * 3 + [InputStatus.QUEUED]
    assert machine.queued == 1
    # A worker of that node takes them: no return is counted (max_returns=0 would fail it).
    assert machine.handle(InputsClaimed("w1", "node-a", (0, 1))) == []
    assert [machine.inputs[n].worker for n in (0, 1, 2)] == ["w1", "w1", handed_to("node-a")]
    assert [machine.inputs[n].returns for n in (0, 1, 2)] == [0, 0, 0]
    machine.handle(InputsSucceeded("w1", (0,)))
    assert machine.outcomes == {0: InputStatus.SUCCEEDED}


def test_a_node_lost_with_inputs_handed_out_puts_them_back_without_using_tries():
    machine = InputMachine(3, retries=0)
    machine.handle(InputsHandedOut("node-a", (0, 1)))
    machine.handle(InputsHandedOut("node-b", (2,)))
    machine.handle(InputsClaimed("w1", "node-a", (0,)))
    commands = machine.handle(NodeLost("node-a"))
    assert sorted(i for c in commands if isinstance(c, Requeue) for i in c.indices) == [0, 1]
    assert [machine.inputs[n].status for n in (0, 1)] == [InputStatus.QUEUED] * 2
    assert [machine.inputs[n].attempts for n in (0, 1)] == [0, 0]
    assert machine.inputs[2].worker == handed_to("node-b")


def test_canceling_stops_workers_but_not_the_nodes_handed_out_inputs():
    machine = InputMachine(2)
    machine.handle(InputsHandedOut("node-a", (0, 1)))
    machine.handle(InputsClaimed("w1", "node-a", (0,)))
    commands = machine.handle(CancelJob())
    assert [c for c in commands if isinstance(c, KillWorker)] == [KillWorker("w1", "job canceled")]


def test_an_input_not_queued_cannot_be_handed_out():
    machine = InputMachine(1)
    machine.handle(InputsClaimed("w1", "node-a", (0,)))
    with pytest.raises(InvariantError, match="handed out while leased"):
        machine.handle(InputsHandedOut("node-a", (0,)))
