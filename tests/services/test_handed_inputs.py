"""Inputs handed out with a node's assignment (services.handed_inputs): they travel in the
assignment's payload behind the function, and the node runs them without a queue call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core.link_wire import Assign, read_request
from burla.core.models import ContainerSpec, JobSpec
from burla.core.protocols import Claim
from burla.core.worker_wire import Inputs
from burla.services.handed_inputs import (
    handed_claims,
    handed_payload,
    handed_receipt,
    is_handed,
    queued_receipts,
)
from burla.services.node_service.feed import Assignment, Feed
from burla.services.node_service.reports import Reporter
from burla.services.node_service.worker_pool import Worker
from burla.services.store_keys import INLINE
from burla.sim.clock import VirtualClock
from tests.unit.test_link_wire import through_a_frame


def test_an_assignment_carries_its_inputs_behind_the_function() -> None:
    items = [("4", INLINE + b"four"), ("9", b"\x01blob/key")]
    indices, sizes, inputs = handed_payload(items)
    request = Assign({"job_id": "j"}, 2, None, (), None, 1, indices, sizes)
    request = read_request(through_a_frame(request))
    assert isinstance(request, Assign)
    payload = b"function" + inputs
    assert request.function_of(payload) == b"function"
    claims = handed_claims(
        "node-1", request.handed, request.handed_sizes, request.handed_of(payload)
    )
    assert [(c.item_id, c.data) for c in claims] == items
    assert {c.receipt for c in claims} == {handed_receipt("node-1")}
    assert all(is_handed(c.receipt) for c in claims)


def test_handed_out_receipts_are_never_sent_to_the_queue() -> None:
    mine = handed_receipt("node-1")
    assert queued_receipts([mine, "r1", mine, "r2", "r1"]) == ["r1", "r2"]


class QueueWatchingStore(MemoryStore):
    """A memory Store that notes every call on a queue."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.queue_calls: list[str] = []

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> list[Claim]:
        self.queue_calls.append("claim")
        return await super().claim(queue, limit=limit, lease_s=lease_s)

    async def ack(self, queue: str, receipts: Any) -> set[str]:
        self.queue_calls.append("ack")
        return await super().ack(queue, receipts)

    async def renew(self, queue: str, receipts: Any, *, lease_s: float) -> set[str]:
        self.queue_calls.append("renew")
        return await super().renew(queue, receipts, lease_s=lease_s)


class Channel:
    """A worker's end of the node's connection: the inputs it was sent."""

    def __init__(self) -> None:
        self.inputs: list[int] = []

    async def send(self, frames: list[tuple[Any, bytes]]) -> None:
        for message, _ in frames:
            if isinstance(message, Inputs):
                self.inputs += [item.index for item in message.items]


def test_a_node_handed_all_of_a_jobs_inputs_runs_them_without_a_queue_call() -> None:
    """Two inputs for two workers: both go out at once; the results are written and
    reported, and nothing is claimed, renewed, acked or handed back, even on cancel."""

    async def main() -> tuple[list[int], list[str], int]:
        clock = VirtualClock()
        store = QueueWatchingStore(clock)
        blobs = MemoryBlobStore(clock)
        reported: list[Any] = []

        async def told(report: Any, payload: bytes) -> None:
            reported.extend(report.events)

        reporter = Reporter("node-1", store, blobs, told, clock)
        channel = Channel()
        spec = ContainerSpec(image="burla/default:py3.11")
        workers = [
            Worker(f"w{cpu}", spec, 5000, frozenset({cpu}), frozenset({cpu}), Path("/nonexistent"))
            for cpu in range(2)
        ]
        for worker in workers:
            worker.channel = channel
        feed = Feed(store=store, blobs=blobs, clock=clock, lease_s=60, pool=None, reporter=reporter)
        _, sizes, inputs = handed_payload([("0", INLINE + b"a"), ("1", INLINE + b"b")])
        handed = handed_claims("node-1", (0, 1), sizes, inputs)
        job = JobSpec(job_id="job", n_inputs=2)
        assignment = Assignment(job, b"f", workers, pending=handed, claimed=2)
        async with trio.open_nursery() as tasks:
            tasks.start_soon(reporter.run)
            tasks.start_soon(feed.renew_leases)
            await feed.start(assignment, tasks)
            await trio.sleep(0.001)
            assert sorted(channel.inputs) == [0, 1]
            for worker in workers:  # each finishes its input
                (claim,) = worker.inflight.values()
                reporter.succeeded("job", int(claim.item_id), b"result", claim)
                worker.inflight.clear()
            await reporter.report_news()
            await trio.sleep(100)  # leases would be renewed by now, were there any
            await feed.end("job", cancel=True)
            tasks.cancel_scope.cancel()
        return channel.inputs, store.queue_calls, len(reported)

    sent, queue_calls, reported = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert sorted(sent) == [0, 1]
    assert queue_calls == []
    assert reported >= 2  # the claims of both workers
