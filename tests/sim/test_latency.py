"""Store profiles: calls take virtual time, and the limits hold as the real backends'."""

from __future__ import annotations

import dataclasses
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
from burla.sim.latency import CallStats, SlowBlobStore, SlowStore
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
        store = _firestore(timers, parallel_commits=1, database_writes_per_s=None)
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
