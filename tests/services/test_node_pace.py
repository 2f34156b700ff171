"""How a node keeps its workers busy on a slow Store: a second input queued behind a
worker's own when claims take long against its inputs, and the leases of finished inputs
kept until their results are written."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
import trio
import trio.testing

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core.clock import WallClock
from burla.core.errors import TransientBackendError
from burla.core.models import ContainerSpec, JobSpec
from burla.core.protocols import Data
from burla.core.report_wire import ResultsReport
from burla.services.node_service.feed import Assignment, _room
from burla.services.node_service.reports import Reporter
from burla.services.node_service.worker_pool import Worker
from burla.services.result_pages import stored_results
from burla.services.retrying import PATIENT_PAUSE_S, RetryingStore
from burla.services.store_keys import queue_name
from burla.sim.clock import VirtualClock

pytestmark = pytest.mark.anyio


def worker_of_one_second_inputs() -> Worker:
    spec = ContainerSpec(image="burla/default:py3.11")
    worker = Worker("w", spec, 5000, frozenset({0}), frozenset({0}), Path("/nonexistent"))
    worker.per_input_s = 1.0
    return worker


@pytest.mark.parametrize(("claim_s", "room"), [(0.2, 2), (0.01, 1)])
def test_a_second_input_waits_behind_a_long_one_only_when_claims_are_slow(
    claim_s: float, room: int
) -> None:
    worker = worker_of_one_second_inputs()
    assignment = Assignment(JobSpec(job_id="job", n_inputs=10), b"f", [worker])
    assignment.claim_s = claim_s
    assert _room(worker, assignment) == room


class SlowWrites(MemoryStore):
    """Result writes wait until `go` is set."""

    def __init__(self) -> None:
        super().__init__(WallClock())
        self.writing = anyio.Event()
        self.go = anyio.Event()

    async def put_many(self, docs: dict[str, Data], *, create_only: bool = False) -> set[str]:
        self.writing.set()
        await self.go.wait()
        return await super().put_many(docs, create_only=create_only)


async def test_a_finished_input_is_held_until_its_result_is_written() -> None:
    store = SlowWrites()
    queue = queue_name("job")
    await store.push(queue, [("0", b"input")])
    (claim,) = await store.claim(queue, limit=1, lease_s=60)

    async def told(*_: object) -> None:
        pass

    reporter = Reporter("node-1", store, MemoryBlobStore(), told, WallClock())
    reporter.succeeded("job", 0, b"result", claim)
    assert reporter.unacked("job") == [claim.receipt]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(reporter.flush)
        await store.writing.wait()
        assert reporter.unacked("job") == [claim.receipt]  # its lease is still renewed
        assert reporter.unacked("other-job") == []
        store.go.set()
    assert reporter.unacked("job") == []
    assert await stored_results(store, MemoryBlobStore(), "job") == {0: ("ok", b"result")}
    assert await store.renew(queue, [claim.receipt], lease_s=60) == set()  # acked


def test_results_wait_for_a_store_that_is_down_and_are_reported_once_it_is_back() -> None:
    """Under virtual time: result writes fail for two minutes, longer than a call is
    retried. The node does not end; nothing is reported before its result is written."""

    async def main() -> tuple[list[float], dict[int, tuple[str, bytes]]]:
        clock = VirtualClock()
        store = MemoryStore(clock)
        down_until = trio.current_time() + 120

        class Outage(MemoryStore):
            async def put_many(self, docs, *, create_only=False):
                if trio.current_time() < down_until:
                    raise TransientBackendError("the database is unreachable")
                return await store.put_many(docs, create_only=create_only)

            async def ack(self, queue, receipts):
                return await store.ack(queue, receipts)

        queue = queue_name("job")
        await store.push(queue, [("0", b"input")])
        (claim,) = await store.claim(queue, limit=1, lease_s=600)
        reported_at: list[float] = []

        async def told(*_: object) -> None:
            reported_at.append(trio.current_time())

        blobs = MemoryBlobStore(clock)
        reporter = Reporter("node-1", RetryingStore(Outage(clock)), blobs, told, clock)
        async with trio.open_nursery() as tasks:
            tasks.start_soon(reporter.run)
            reporter.succeeded("job", 0, b"result", claim)
            reporter.event(ResultsReport("job", "w", (0,), ("ok",), (6,)), b"result")
            await reporter.report_news()
            await trio.sleep(300)
            tasks.cancel_scope.cancel()
        return reported_at, await stored_results(store, blobs, "job")

    reported_at, stored = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert stored == {0: ("ok", b"result")}
    assert len(reported_at) == 1
    assert 120 <= reported_at[0] <= 120 + 30 + PATIENT_PAUSE_S  # soon after it came back
