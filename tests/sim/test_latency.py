"""Store profiles: calls take virtual time, and the limits hold as the real backends'."""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core.errors import InvalidRequestError, TransientBackendError
from burla.services.retrying import RetryingBlobStore, RetryingStore
from burla.sim import run, scenario
from burla.sim.clock import Timers, VirtualClock
from burla.sim.latency import CallStats, RampGate, SlowBlobStore, SlowStore
from burla.sim.profiles import FIRESTORE, GCS, SQLITE

FIXED = scenario.Seconds(low=0.01, high=0.01)


def _virtual(test: Callable[[Timers], Awaitable[Any]]) -> Any:
    """Run `test` under virtual time with the simulator's timer heap running."""
    results: list[Any] = []

    async def main() -> None:
        timers = Timers()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(timers.run)
            results.append(await test(timers))
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return results[0]


def _firestore(timers: Timers, **changes: Any) -> SlowStore:
    profile = dataclasses.replace(FIRESTORE, read=FIXED, write=FIXED, query=FIXED, **changes)
    return SlowStore(MemoryStore(VirtualClock()), profile, timers, random.Random(1), CallStats())


def test_a_call_takes_its_round_trips_in_virtual_time() -> None:
    async def test(timers: Timers) -> tuple[float, float]:
        store = _firestore(timers)
        await store.put("a", {"x": 1})
        put_done = trio.current_time()
        await store.put("a", {"x": 2}, if_version=1)  # burla reads the version, then commits
        return put_done, trio.current_time() - put_done

    put_s, conditional_s = _virtual(test)
    assert put_s == pytest.approx(0.01)
    assert conditional_s == pytest.approx(0.02)


def test_writes_to_one_document_past_its_rate_queue_then_abort() -> None:
    async def test(timers: Timers) -> tuple[list[float], list[str]]:
        store = _firestore(timers, contention_timeout_s=5.0)
        done: list[float] = []
        aborted: list[str] = []

        async def write(n: int) -> None:
            try:
                await store.put("hot", {"n": n})
                done.append(trio.current_time())
            except TransientBackendError as error:
                aborted.append(str(error))

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(write, n)
        return done, aborted

    done, aborted = _virtual(test)
    # A burst of 10 passes; the next ones wait a second each, up to 5 s; the rest abort.
    assert len(done) == 15
    assert len(aborted) == 5
    assert all("ABORTED: Too much contention" in error for error in aborted)
    assert sorted(done)[9] == pytest.approx(0.01)
    assert sorted(done)[-1] == pytest.approx(5.01)


def test_the_services_retries_get_an_aborted_write_through() -> None:
    async def test(timers: Timers) -> int:
        slow = _firestore(timers, contention_timeout_s=1.0)
        store = RetryingStore(slow, rng=random.Random(2))
        async with trio.open_nursery() as nursery:
            for n in range(15):
                nursery.start_soon(store.put, "hot", {"n": n})
        doc = await slow.inner.get("hot")
        assert doc is not None
        return doc.version

    assert _virtual(test) == 15


def test_a_document_over_one_mebibyte_is_refused_as_firestore_refuses_it() -> None:
    async def test(timers: Timers) -> None:
        store = _firestore(timers)
        with pytest.raises(InvalidRequestError, match="1 MiB"):
            await store.put_many({"big": {"payload": b"x" * (1 << 20)}})
        assert await store.inner.get("big") is None

    _virtual(test)


def test_a_batch_over_500_writes_takes_several_commits() -> None:
    async def test(timers: Timers) -> float:
        store = _firestore(
            timers, parallel_commits=1, database_writes_per_s=None, ramp_start_per_s=None
        )
        await store.put_many({f"doc-{n}": {} for n in range(1200)})
        return trio.current_time()

    assert _virtual(test) == pytest.approx(0.03)


def test_sqlite_writes_take_turns() -> None:
    async def test(timers: Timers) -> float:
        profile = dataclasses.replace(SQLITE, write=FIXED)
        store = SlowStore(
            MemoryStore(VirtualClock()), profile, timers, random.Random(1), CallStats()
        )
        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(store.put, f"doc-{n}", {})
        return trio.current_time()

    assert _virtual(test) == pytest.approx(0.1)


def test_a_blob_written_twice_within_a_second_is_refused_then_retried() -> None:
    async def test(timers: Timers) -> tuple[int, bytes]:
        profile = dataclasses.replace(GCS, write=FIXED, read=FIXED)
        slow = SlowBlobStore(
            MemoryBlobStore(VirtualClock()), profile, timers, random.Random(1), CallStats()
        )
        blobs = RetryingBlobStore(slow, rng=random.Random(3))
        await blobs.put("k", b"1")
        await blobs.put("k", b"2")
        return slow.refused, await blobs.get("k")

    refused, data = _virtual(test)
    assert refused >= 1
    assert data == b"2"


def test_a_job_on_firestore_pays_for_its_store_calls() -> None:
    seed = scenario.load("seed")
    on_memory = run.run(seed)
    on_firestore = run.run(seed.model_copy(update={"store_profile": "firestore"}))
    assert on_memory["store_calls"] == {}
    calls = on_firestore["store_calls"]
    assert calls["store.put_many"]["calls"] >= 1000  # every result is written
    assert calls["store.claim"]["seconds"] > 0
    assert on_firestore["time_to_first_result_s"] > on_memory["time_to_first_result_s"]
    assert on_firestore["checks"]["inputs_lost"] == 0


def test_every_document_a_queue_call_writes_or_deletes_counts_against_the_database() -> None:
    async def test(timers: Timers) -> tuple[float, int, float, int]:
        store = _firestore(timers, ramp_start_per_s=None, database_writes_per_s=1000.0)
        await store.push("q", [(f"i{n}", b"") for n in range(5000)])
        pushed_at, pushed = trio.current_time(), store.writes
        claims = await store.claim("q", limit=2000, lease_s=60)
        await store.renew("q", [c.receipt for c in claims], lease_s=60)
        await store.ack("q", [c.receipt for c in claims])
        return pushed_at, pushed, trio.current_time() - pushed_at, store.writes

    pushed_at, pushed, settled_s, writes = _virtual(test)
    # The queue's counter and 5,000 items: 5,001 writes at 1,000 a second, the first
    # second's worth at once; after the counter's commit and two rounds of 8 commits.
    assert pushed == 5001
    assert pushed_at == pytest.approx(0.03 + 4.001)
    # 2,000 leases, renewals and deletes, each a write, wait behind the push's: all
    # 11,001 writes pass at 1,000 a second from the push's commits (at 0.03 s), the last
    # a second's worth early, so the ack returns at 10.031 s.
    assert writes == 5001 + 3 * 2000
    assert pushed_at + settled_s == pytest.approx(0.03 + 11.001 - 1.0)


def test_a_new_key_range_takes_500_writes_a_second_then_750_after_five_minutes() -> None:
    async def test(timers: Timers) -> list[float]:
        store = _firestore(timers, database_writes_per_s=None, batch_writes=1 << 20)
        took: list[float] = []
        for queue, items, at in (("q", 1000, 0.0), ("q", 1500, 300.0), ("new", 1500, 300.0)):
            await trio.sleep_until(at)
            start = trio.current_time()
            await store.push(queue, [(f"i{n}", b"") for n in range(items)])
            took.append(trio.current_time() - start - 0.02)  # less the two commits
        return took

    # A cold queue: 1,000 items at 500 a second, a second's worth at once. Five minutes
    # after its first write it takes 750 a second; a queue new then starts at 500 again.
    assert _virtual(test) == pytest.approx([1.0, 1.0, 2.0])


def test_a_ramp_grows_by_half_every_five_minutes_from_a_ranges_first_write() -> None:
    gate = RampGate(500.0, 1.5, 300.0)
    assert gate.book("r", 10.0, 1) == 0.0
    rates = [gate.rate("r", at) for at in (10.0, 309.9, 310.0, 610.0, 910.0)]
    assert rates == [500.0, 500.0, 750.0, 1125.0, 1687.5]
    # 150,000 writes fill the first five minutes; the next 75,000 pass at 750 a second,
    # from any moment of opening (274.38... + 300 - 274.38... falls a hair short of 300).
    for opened in (0.0, 274.3888989540886):
        gate = RampGate(500.0, 1.5, 300.0)
        assert gate.book("r", opened, 225_000) == pytest.approx(400.0 - 1.0)


def test_a_commit_past_the_ramps_backlog_is_refused_with_resource_exhausted() -> None:
    async def test(timers: Timers) -> tuple[list[str], int]:
        store = _firestore(
            timers, ramp_start_per_s=100.0, database_writes_per_s=None, throttle_timeout_s=2.0
        )
        refused: list[str] = []

        async def write(n: int) -> None:
            try:
                await store.put_many({f"results/j/{n}-{m}": {} for m in range(100)})
            except TransientBackendError as error:
                refused.append(str(error))

        async with trio.open_nursery() as nursery:
            for n in range(5):
                nursery.start_soon(write, n)
        return refused, len(await store.inner.list("results/j/", limit=1000))

    refused, stored = _virtual(test)
    # Each write is a second of the cold range's 100 a second: the first three wait at
    # most 2 s (a second's worth passes at once), the other two are refused, unwritten.
    assert len(refused) == 2
    assert all(
        "RESOURCE_EXHAUSTED" in error and "exponential backoff" in error for error in refused
    )
    assert stored == 300


def test_the_services_retries_get_writes_refused_for_the_rate_through() -> None:
    async def test(timers: Timers) -> tuple[int, int, float]:
        slow = _firestore(
            timers, ramp_start_per_s=100.0, database_writes_per_s=None, throttle_timeout_s=2.0
        )
        store = RetryingStore(slow, rng=random.Random(4))
        async with trio.open_nursery() as nursery:
            for n in range(10):
                docs = {f"results/j/{n}-{m}": {} for m in range(100)}
                nursery.start_soon(functools.partial(store.put_many, docs))
        stored = len(await slow.inner.list("results/j/", limit=2000))
        return slow.exhausted, stored, trio.current_time()

    exhausted, stored, done_at = _virtual(test)
    assert exhausted > 0
    assert stored == 1000
    assert done_at >= 9.0  # 1,000 writes at 100 a second, less the second's worth


def test_a_call_that_would_wait_past_its_deadline_fails_with_deadline_exceeded() -> None:
    async def test(timers: Timers) -> tuple[list[float], list[str], int]:
        slow = _firestore(
            timers, ramp_start_per_s=100.0, database_writes_per_s=None, deadline_s=5.0
        )
        done: list[float] = []
        failed: list[str] = []

        async def write(n: int) -> None:
            try:
                await slow.put_many({f"results/j/{n}-{m}": {} for m in range(400)})
                done.append(trio.current_time())
            except TransientBackendError as error:
                failed.append(str(error))
                done.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            for n in range(2):
                nursery.start_soon(write, n)
        return done, failed, slow.past_deadline

    done, failed, past_deadline = _virtual(test)
    # The first 400 writes wait 3 s; the next would wait 7 s, past the 5 s deadline: they
    # fail when it has passed, unwritten.
    assert sorted(done) == pytest.approx([0.01 + 3.0, 0.01 + 5.0])
    assert past_deadline == 1
    assert failed == [
        "firestore put_many: DEADLINE_EXCEEDED: A deadline was exceeded on the server."
    ]


def test_claims_sent_at_once_are_admitted_one_after_another_within_the_backlog() -> None:
    async def test(timers: Timers) -> tuple[list[float], int, int]:
        store = _firestore(
            timers,
            ramp_start_per_s=100.0,
            database_writes_per_s=None,
            throttle_timeout_s=2.0,
            queue_head_races=False,
        )
        await store.inner.push("q", [(f"i{n}", b"") for n in range(1000)])  # unhindered
        took: list[float] = []
        refused = 0

        async def claim() -> None:
            nonlocal refused
            start = trio.current_time()
            try:
                await store.claim("q", limit=100, lease_s=600)
                took.append(trio.current_time() - start)
            except TransientBackendError:
                refused += 1

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(claim)
        return took, refused, store.writes

    took, refused, writes = _virtual(test)
    # Each claim's leases are a second of the cold range's 100 writes a second, a second's
    # worth passing at once: three wait 0, 1 and 2 s; the five after them would wait longer
    # than 2 s and are refused, whatever the first ones had booked when they were sent.
    assert sorted(took) == pytest.approx([0.02, 1.02, 2.02])
    assert refused == 5
    assert writes == 300
