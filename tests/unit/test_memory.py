"""Memory that grows: the next try's memory, and which workers make room for it."""

from hypothesis import given
from hypothesis import strategies as st

from burla.core.inputs import (
    Failure,
    Grow,
    InputMachine,
    InputsClaimed,
    InputsSucceeded,
    RecordFailure,
    Requeue,
    WorkerDied,
)
from burla.core.memory import (
    GIB,
    WorkerMemory,
    describe_gb,
    gib,
    next_memory_gb,
    plan_growth,
)


def test_the_next_try_gets_twice_the_memory_up_to_the_whole_node():
    assert next_memory_gb(0.25, 16) == 0.5
    assert next_memory_gb(6, 16) == 12
    assert next_memory_gb(12, 16) == 16
    assert next_memory_gb(16, 16) is None
    assert next_memory_gb(20, 16) is None  # a node bigger than this one gave it more


def test_memories_read_as_a_list():
    assert describe_gb([0.25]) == "0.25 GB"
    assert describe_gb([0.25, 0.5]) == "0.25 GB and 0.5 GB"
    assert describe_gb([0.25, 0.5, 1]) == "0.25 GB, 0.5 GB and 1 GB"


def workers(*limits_gb: float, busy: tuple[int, ...] = ()) -> list[WorkerMemory]:
    busy = busy or (0,) * len(limits_gb)
    pairs = enumerate(zip(limits_gb, busy, strict=True))
    return [WorkerMemory(f"w{n}", gib(gb), b) for n, (gb, b) in pairs]


def test_a_node_with_memory_to_spare_grows_a_worker_and_parks_none():
    # 4 CPUs, 16 GB, func_ram=1: four workers use 4 GB of the 16.
    growth = plan_growth(gib(16), workers(1, 1, 1, 1), gib(2))
    assert growth.limit == gib(2)
    assert growth.park == ()


def test_a_node_full_of_workers_parks_siblings_so_the_limits_fit():
    # 4 CPUs, 4 GB, func_ram=1: every byte is a worker's; 2 GB for one parks one, 4 GB three.
    growth = plan_growth(gib(4), workers(1, 1, 1, 1), gib(2))
    assert (growth.worker, growth.limit, len(growth.park)) == ("w0", gib(2), 1)
    assert plan_growth(gib(4), workers(1, 1, 1, 1), gib(4)).park == ("w1", "w2", "w3")


def test_growth_picks_the_biggest_worker_the_least_busy_and_parks_idle_siblings_first():
    growth = plan_growth(gib(4), workers(1, 2, 1, busy=(0, 3, 2)), gib(3))
    assert growth.worker == "w1"  # 2 GB already: 1 more to find
    assert growth.park == ("w0",)  # idle, of the two 1 GB siblings
    assert plan_growth(gib(4), workers(1, 1, busy=(2, 0)), gib(2)).worker == "w1"


def test_more_than_the_node_has_is_cut_to_the_whole_node():
    growth = plan_growth(gib(4), workers(1, 1, 1, 1), gib(64))
    assert growth.limit == gib(4)
    assert len(growth.park) == 3


@given(
    st.integers(1, 64),
    st.lists(st.tuples(st.integers(1, 16), st.integers(0, 3)), min_size=1, max_size=12),
    st.integers(1, 128),
)
def test_a_growth_fits_the_node_and_gives_what_is_needed(node_gb, shape, need_gb):
    active = [WorkerMemory(f"w{n}", gib(gb), busy) for n, (gb, busy) in enumerate(shape)]
    node = gib(node_gb)
    need = gib(need_gb)
    growth = plan_growth(node, active, need)
    limits = {w.name: w.limit for w in active}
    assert growth.worker in limits
    assert growth.worker not in growth.park
    assert len(set(growth.park)) == len(growth.park)
    assert growth.limit >= min(need, node)
    assert growth.limit >= limits[growth.worker], "a limit is never lowered"
    left = [name for name in limits if name != growth.worker and name not in growth.park]
    total = growth.limit + sum(limits[name] for name in left)
    others = sum(limits.values()) - limits[growth.worker]
    if others + max(min(need, node), limits[growth.worker]) <= node:
        assert growth.park == (), "a node with room parks nobody"
    assert total <= node or not left, "the limits left fit, unless only the worker is left"


# The input machine ---------------------------------------------------------------------
def out_of_memory(machine, worker, index, memory_gb, node_gb=4.0, memory_claimed=None):
    machine.handle(InputsClaimed(worker, "node", (index,), memory_claimed))
    return machine.handle(
        WorkerDied(worker, index, out_of_memory=True, memory_gb=memory_gb, node_gb=node_gb)
    )


def test_an_input_out_of_memory_runs_again_with_twice_the_memory():
    machine = InputMachine(1, retries=2, grow_memory=True)
    assert out_of_memory(machine, "w", 0, 1.0) == [Grow(0, 2.0)]
    assert machine.inputs[0].ran_out == (1.0,)
    machine.handle(InputsClaimed("w2", "node", (0,), 2.0))
    machine.handle(InputsSucceeded("w2", (0,)))
    assert machine.grew == {0: None}
    assert machine.inputs[0].memory_gb == 2.0


def test_without_grow_memory_a_retry_gets_the_same_memory():
    machine = InputMachine(1, retries=1)
    assert out_of_memory(machine, "w", 0, 1.0) == [Requeue((0,))]
    commands = out_of_memory(machine, "w2", 0, 1.0)
    assert commands[0] == RecordFailure(0, Failure.OUT_OF_MEMORY, 2, (1.0, 1.0))


def test_growing_stops_at_the_whole_node_and_the_input_fails_saying_so():
    machine = InputMachine(1, retries=5, grow_memory=True)
    assert out_of_memory(machine, "a", 0, 1.0) == [Grow(0, 2.0)]
    assert out_of_memory(machine, "b", 0, 2.0, memory_claimed=2.0) == [Grow(0, 4.0)]
    commands = out_of_memory(machine, "c", 0, 4.0, memory_claimed=4.0)
    assert commands[0] == RecordFailure(0, Failure.OUT_OF_MEMORY, 3, (1.0, 2.0, 4.0), 4.0)
    assert machine.inputs[0].failure is Failure.OUT_OF_MEMORY


def test_growing_uses_tries_and_the_last_one_fails_with_what_each_had():
    machine = InputMachine(1, retries=1, grow_memory=True)
    assert out_of_memory(machine, "a", 0, 0.25, node_gb=16) == [Grow(0, 0.5)]
    commands = out_of_memory(machine, "b", 0, 0.5, node_gb=16)
    assert commands[0] == RecordFailure(0, Failure.OUT_OF_MEMORY, 2, (0.25, 0.5))


def test_a_worker_that_died_otherwise_grows_nothing():
    machine = InputMachine(2, retries=1, grow_memory=True)
    machine.handle(InputsClaimed("w", "node", (0, 1)))
    commands = machine.handle(WorkerDied("w", 0, memory_gb=1.0, node_gb=4.0))
    assert commands == [Requeue((0,)), Requeue((1,))]
    assert machine.inputs[0].ran_out == ()


def test_a_node_that_does_not_say_its_memory_gets_a_plain_retry():
    machine = InputMachine(1, retries=1, grow_memory=True)
    machine.handle(InputsClaimed("w", "node", (0,)))
    assert machine.handle(WorkerDied("w", 0, out_of_memory=True)) == [Requeue((0,))]
    assert GIB == 1 << 30
