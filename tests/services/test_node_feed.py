"""The node's feed looks at its job's queue again when inputs come back to it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import trio
import trio.testing

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core.models import ContainerSpec, JobSpec
from burla.core.worker_wire import Inputs
from burla.services.node_service.feed import Assignment, Feed
from burla.services.node_service.reports import Reporter
from burla.services.node_service.worker_pool import Worker
from burla.services.store_keys import queue_name
from burla.sim.clock import VirtualClock


class UnsteadyClock(VirtualClock):
    """A clock that reads a microsecond behind the event loop's now and then, as a wall
    clock does against the monotonic one the loop sleeps by."""

    def __init__(self) -> None:
        super().__init__()
        self._jitter = random.Random(7)

    def now(self) -> float:
        return super().now() - (1e-6 if self._jitter.random() < 0.5 else 0.0)


class Channel:
    """A worker's end of the node's connection: the inputs it was sent."""

    def __init__(self) -> None:
        self.inputs: list[int] = []

    async def send(self, frames: list[tuple[Any, bytes]]) -> None:
        for message, _ in frames:
            if isinstance(message, Inputs):
                self.inputs += [item.index for item in message.items]


def test_inputs_whose_lease_ran_out_are_claimed_again() -> None:
    """Inputs claimed by a node that was lost come back once their leases run out; the
    node still on the job, its queue found empty long before, claims and runs them."""

    async def main() -> list[int]:
        clock = UnsteadyClock()
        store = MemoryStore(clock)
        queue = queue_name("job")
        await store.push(queue, [(str(i), b"\x00input") for i in range(3)])
        await store.claim(queue, limit=2, lease_s=60)  # by the node that was lost

        async def told(*_: object) -> None:
            pass

        blobs = MemoryBlobStore(clock)
        reporter = Reporter("node-2", store, blobs, told, clock)
        channel = Channel()
        spec = ContainerSpec(image="burla/default:py3.11")
        workers = [
            Worker(f"w{cpu}", spec, 5000, frozenset({cpu}), frozenset({cpu}), Path("/nonexistent"))
            for cpu in range(2)
        ]
        for worker in workers:
            worker.channel = channel
        feed = Feed(
            store=store,
            blobs=blobs,
            clock=clock,
            lease_s=60,
            pool=None,
            reporter=reporter,
        )
        assignment = Assignment(JobSpec(job_id="job", n_inputs=3), b"f", workers)
        async with trio.open_nursery() as tasks:
            await feed.start(assignment, tasks)
            await trio.sleep(1)
            assert channel.inputs == [2]
            for worker in workers:  # its input is done; the queue is empty for a minute
                worker.inflight.clear()
                assignment.changed[worker.name] = worker
            assignment.wake.set()
            await trio.sleep(120)
            await feed.end("job", cancel=False)
        return channel.inputs

    sent = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert sorted(sent) == [0, 1, 2]
