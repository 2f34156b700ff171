"""Queue items that hold runs of inputs: how a job's inputs are cut into runs, and how a
node reads a run's inputs back from the job's input pages."""

from __future__ import annotations

import anyio
from hypothesis import given
from hypothesis import strategies as st

from burla.backends.memory import MemoryStore
from burla.core.clock import WallClock
from burla.core.protocols import Document
from burla.services.input_pages import input_pages
from burla.services.input_runs import (
    LEAST_PER_RUN,
    MOST_PER_RUN,
    MOST_RUNS,
    RUNS_PER_NODE,
    KeptInputs,
    grown_input,
    handed_each,
    in_runs,
    is_run,
    memory_of,
    one_input,
    run_lengths,
    run_of,
    runs_of_items,
)
from burla.services.store_keys import IN_BLOB, INLINE


def items_of(sizes: list[int]) -> list[tuple[str, bytes]]:
    """Inline inputs of these sizes, every seventh a big input's blob key."""
    return [
        (str(i), IN_BLOB + f"uploads/u/job/{i}".encode() if i % 7 == 3 else INLINE + bytes(size))
        for i, size in enumerate(sizes)
    ]


def test_a_job_is_queued_in_runs_once_it_has_two_inputs_for_each_run() -> None:
    assert not in_runs(10, nodes=1)  # fewer inputs than runs per node: an item each
    assert in_runs(2 * RUNS_PER_NODE, nodes=1)
    assert not in_runs(2 * 11 * RUNS_PER_NODE - 1, nodes=11)
    assert in_runs(2 * MOST_RUNS, nodes=10_000)  # no more than MOST_RUNS runs in all
    assert in_runs(100, nodes=0)


@given(st.integers(1, 2_000_000), st.integers(0, 3_000), st.sampled_from([1, 2, 8, 96]))
def test_run_lengths_cover_every_input_in_few_runs_that_shrink_toward_the_end(
    n_inputs: int, nodes: int, workers: int
) -> None:
    lengths = run_lengths(n_inputs, nodes, workers)
    assert sum(lengths) == n_inputs
    assert all(1 <= length <= MOST_PER_RUN for length in lengths)
    assert len(lengths) <= max(MOST_RUNS, -(-n_inputs // MOST_PER_RUN))
    # Factoring: each batch of runs (one per node) is half of what is left, so runs only
    # shrink, but for the last batch, which shares out what is left evenly.
    assert lengths[-1] <= lengths[0]
    if len(lengths) < MOST_RUNS:
        assert lengths[-1] <= LEAST_PER_RUN


@given(st.integers(1, 2_000_000), st.integers(MOST_RUNS, 3_000), st.sampled_from([2, 8, 96]))
def test_runs_shared_out_at_once_end_at_most_a_round_apart(
    n_inputs: int, nodes: int, workers: int
) -> None:
    """On as many nodes as MOST_RUNS holds one batch for, the runs are one batch, shared
    out: nodes that take one each end a round apart at most."""
    lengths = run_lengths(n_inputs, nodes, workers)
    rounds = [-(-length // workers) for length in lengths]
    assert max(rounds) - min(rounds) <= 1


def test_a_million_inputs_on_a_thousand_nodes_are_a_run_each_and_a_tenth_shrinks() -> None:
    # 5,416 rounds of 96 and 64 inputs over 1,000 runs: 416 of 6 rounds, then 5 rounds.
    assert run_lengths(520_000, nodes=1_000, workers=96) == [576] * 416 + [544] + [480] * 583
    tenth = run_lengths(52_000, nodes=100, workers=96)
    assert tenth[:100] == [260] * 100  # half of what is left, for each node
    assert tenth[-1] <= LEAST_PER_RUN
    assert len(tenth) < MOST_RUNS


def test_a_big_job_hands_each_of_its_nodes_half_its_share_in_whole_rounds() -> None:
    assert handed_each(1_000_000, nodes=1_000, workers=96) == 480
    assert handed_each(300, nodes=1, workers=2) == 150
    assert handed_each(10, nodes=0, workers=1) == 5
    assert handed_each(100, nodes=1, workers=96) == 50  # less than a round: as it is


def queued(items: list[tuple[str, bytes]], nodes: int) -> tuple[list[tuple[str, bytes]], int]:
    """What a job queues of `items` if it may run on `nodes`: runs, or the items; and
    the longest run."""
    if not in_runs(len(items), nodes):
        return items, 1
    lengths = run_lengths(len(items), nodes)
    return runs_of_items(items, lengths), max(lengths)


@given(st.lists(st.integers(0, 4000), min_size=1, max_size=2500), st.integers(1, 40))
def test_runs_cover_every_input_once_each(sizes: list[int], nodes: int) -> None:
    items = items_of(sizes)
    items_queued, length = queued(items, nodes)
    covered: list[int] = []
    for item_id, data in items_queued:
        run = run_of(data)
        if length == 1:
            assert run is None  # the item holds its input
            covered.append(int(item_id))
            continue
        assert run is not None
        assert is_run(item_id)
        assert item_id == f"r{run[0]}"
        first, count = run
        assert 1 <= count <= length
        covered += range(first, first + count)
    assert covered == list(range(len(sizes)))


@given(st.sets(st.integers(0, 1999), min_size=1), st.integers(1, 3))
def test_runs_of_a_resumed_job_hold_only_the_inputs_it_runs(again: set[int], nodes: int) -> None:
    items = items_of([10] * 2000)
    items_queued, length = queued([items[i] for i in sorted(again)], nodes)
    covered: list[int] = []
    for item_id, data in items_queued:
        run = run_of(data)
        if run is None:
            covered.append(int(item_id))
            continue
        assert 1 <= run[1] <= length
        covered += range(run[0], run[0] + run[1])
    assert covered == sorted(again)


def test_an_input_queued_again_alone_is_no_run_and_refers_to_its_page() -> None:
    item_id, data = one_input(42)
    assert not is_run(item_id)
    assert run_of(data) == (42, 1)
    assert run_of(INLINE + b"arguments") is None
    assert memory_of(data) is None


@given(st.integers(0, 10**6), st.floats(0.01, 4096, allow_nan=False))
def test_an_input_queued_for_more_memory_says_how_much_under_an_id_per_memory(
    index: int, memory_gb: float
) -> None:
    item_id, data = grown_input(index, memory_gb)
    assert not is_run(item_id)
    assert item_id != one_input(index)[0]
    assert item_id != grown_input(index, memory_gb * 2)[0]
    assert run_of(data) == (index, 1)
    assert memory_of(data) == memory_gb
    assert memory_of(INLINE + b"arguments") is None


class CountedLists(MemoryStore):
    def __init__(self) -> None:
        super().__init__(WallClock())
        self.lists = 0

    async def list(self, prefix: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        self.lists += 1
        return await super().list(prefix, after=after, limit=limit)


def test_a_node_reads_each_page_once_and_gets_the_inputs_as_they_were_sent() -> None:
    async def main() -> None:
        items = items_of([20_000] * 120)  # pages of 26 inputs (512 KiB each)
        pages = input_pages("job-1", items)
        items_queued, length = queued(items, nodes=1)
        assert length == max(run_lengths(120, 1))
        assert any(
            run[0] // 26 != (run[0] + run[1] - 1) // 26
            for _, d in items_queued
            if (run := run_of(d))
        )
        assert len(pages) > 3
        store = CountedLists()
        await store.put_many(pages)
        kept = KeptInputs(store, "job-1")
        got: list[tuple[str, bytes]] = []
        for _, data in items_queued:
            run = run_of(data)
            assert run is not None
            got += await kept.run(*run)
        assert got == items
        assert store.lists == len(pages)
        assert await kept.run(*run_of(one_input(5)[1])) == [items[5]]  # type: ignore[misc]

    anyio.run(main)
