"""A main_service that starts over a cluster's Store takes over the jobs left running and
reads nothing of the finished ones, however many the Store keeps."""

from __future__ import annotations

import collections

import anyio
import httpx
import pytest
import trio
import trio.testing

from burla.backends.memory import MemoryStore
from burla.core import wire
from burla.core.clock import WallClock
from burla.core.inputs import InputMachine, InputRecorded, InputsClaimed, InputsSucceeded
from burla.core.models import JobSpec
from burla.core.protocols import Document
from burla.services.input_pages import input_pages
from burla.services.main_service.app import create_app
from burla.services.main_service.catch_up import CATCH_UP_FOR_S
from burla.services.main_service.jobs import JobRun, job_record, run_from_record
from burla.services.store_keys import INLINE, RUNNING_PREFIX, job_key, queue_name, running_key
from burla.sim.clock import VirtualClock
from tests.services.memory_main import memory_service, serving

pytestmark = pytest.mark.anyio
TOKEN = "s"  # memory_service's token
AUTH = {"authorization": f"Bearer {TOKEN}"}


class ReadCountingStore(MemoryStore):
    """A memory Store that notes the job records read and the prefixes listed."""

    def __init__(self, clock: WallClock | VirtualClock) -> None:
        super().__init__(clock)
        self.records_read: list[str] = []
        self.listed: set[str] = set()

    async def get(self, key: str) -> Document | None:
        if key.startswith("jobs/"):
            self.records_read.append(key)
        return await super().get(key)

    async def list(self, prefix: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        self.listed.add(prefix)
        return await super().list(prefix, after=after, limit=limit)


def job_body(job_id: str, n_inputs: int) -> bytes:
    spec = {"n_inputs": n_inputs, "func_cpu": 1, "func_ram": 1}
    return wire.encode_many(
        [({"job_id": job_id, "spec": spec}, b"f"), *(({"i": n}, b"x") for n in range(n_inputs))]
    )


async def until_saved(store: MemoryStore, job_id: str, state: str) -> None:
    with anyio.fail_after(10):
        while True:  # the Store has no event to wait for
            doc = await store.get(job_key(job_id))
            if doc is not None and doc.data["state"] == state:
                return
            await anyio.sleep(0.01)


async def test_only_running_jobs_are_read_back_and_taken_over() -> None:
    clock = WallClock()
    store = ReadCountingStore(clock)
    async with serving(memory_service(clock, store), TOKEN) as client:
        for n in range(40):  # no inputs: each ends at once
            answer = await client.post(
                "/jobs", content=job_body(f"job-done-{n:04d}", 0), headers=AUTH
            )
            assert answer.status_code == 200
        answer = await client.post("/jobs", content=job_body("job-running-1", 3), headers=AUTH)
        assert answer.status_code == 200
        await until_saved(store, "job-running-1", "running")
        await until_saved(store, "job-done-0039", "succeeded")
    assert [doc.key for doc in await store.list(RUNNING_PREFIX)] == [running_key("job-running-1")]

    store.records_read.clear()
    store.listed.clear()
    restarted = memory_service(clock, store)
    async with serving(restarted, TOKEN):
        assert set(restarted.jobs) == {"job-running-1"}
        assert restarted.jobs["job-running-1"].state.value == "running"
        assert store.records_read == [job_key("job-running-1")]
        assert "jobs/" not in store.listed
        await restarted.cancel("job-running-1")
        await until_saved(store, "job-running-1", "canceled")
    # Ended: no longer listed, so the next main_service reads nothing at all.
    assert await store.list(RUNNING_PREFIX) == []


async def test_a_running_entry_whose_job_ended_is_dropped() -> None:
    """main_service stopped between writing a job's last record and unlisting it."""
    clock = WallClock()
    store = ReadCountingStore(clock)
    await store.put(job_key("job-ended-1"), {"state": "succeeded"})
    await store.put(running_key("job-ended-1"), {})
    restarted = memory_service(clock, store)
    async with serving(restarted, TOKEN):
        assert restarted.jobs == {}
    assert await store.list(RUNNING_PREFIX) == []


def test_a_job_taken_over_stops_looking_for_unreported_results_once_leases_end() -> None:
    """The Store is read for results no node reported only while nodes of the
    main_service that went may still write some; under virtual time, for an hour."""

    async def main() -> list[float]:
        clock = VirtualClock()
        store = ReadCountingStore(clock)
        async with serving(memory_service(clock, store), TOKEN) as client:
            answer = await client.post("/jobs", content=job_body("job-long-1", 3), headers=AUTH)
            assert answer.status_code == 200
            await until_saved(store, "job-long-1", "running")
        looked_at: list[float] = []
        listed = store.list

        async def noted_list(prefix: str, **kwargs: object) -> list[Document]:
            if prefix.startswith("results/"):
                looked_at.append(clock.elapsed())
            return await listed(prefix, **kwargs)

        store.list = noted_list
        taken_over_at = clock.elapsed()
        restarted = memory_service(clock, store)
        async with serving(restarted, TOKEN):
            assert restarted.jobs["job-long-1"].state.value == "running"
            await trio.sleep(3600)
        return [t - taken_over_at for t in looked_at]

    looked_at = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(looked_at) > 3  # it did look, again and again
    assert max(looked_at) <= CATCH_UP_FOR_S + 10


class GatedStore(MemoryStore):
    """A memory Store whose first listing of running jobs waits for `gate`."""

    def __init__(self, clock: WallClock) -> None:
        super().__init__(clock)
        self.gate = anyio.Event()
        self.listing = anyio.Event()

    async def list(self, prefix: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        if prefix == RUNNING_PREFIX and not self.listing.is_set():
            self.listing.set()
            await self.gate.wait()
        return await super().list(prefix, after=after, limit=limit)


async def test_a_job_submitted_while_main_service_takes_over_waits_for_it() -> None:
    clock = WallClock()
    store = GatedStore(clock)
    service = memory_service(clock, store)
    transport = httpx.ASGITransport(app=create_app(service, TOKEN))
    answers: list[httpx.Response] = []
    answered = anyio.Event()
    async with (
        anyio.create_task_group() as tasks,
        httpx.AsyncClient(transport=transport, base_url="http://main") as client,
    ):
        tasks.start_soon(service.run, tasks)
        await store.listing.wait()  # taking over, and the app already answers

        async def submit() -> None:
            body = job_body("job-during-takeover", 2)
            answers.append(await client.post("/jobs", content=body, headers=AUTH))
            answered.set()

        tasks.start_soon(submit)
        await anyio.sleep(0.2)
        assert answers == []  # it waits for the takeover
        store.gate.set()
        with anyio.fail_after(10):
            await answered.wait()
        assert answers[0].status_code == 200, answers[0].text
        assert list(service.jobs) == ["job-during-takeover"]
        tasks.cancel_scope.cancel()


async def test_a_big_job_taken_over_queues_again_only_its_unfinished_handed_out_inputs() -> None:
    """A job queued in runs hands its first nodes inputs that no queue holds: its record
    names them, and the main_service that takes it over queues those not finished on
    their own. The others are in the queue's runs still, and are not queued twice."""
    clock = WallClock()
    store = MemoryStore(clock)
    service = memory_service(clock, store)
    spec = JobSpec(job_id="job-big", n_inputs=40)
    run = JobRun(spec, b"f", None, InputMachine(40), run_length=10, submitted_at=clock.now())
    run.to_hand_out = collections.deque((str(n), INLINE + b"x") for n in range(40))
    run.handed_each = 8
    assert len(run.hand_out("node-1", workers=2)) == 8
    assert len(run.hand_out("node-2", workers=2)) == 8
    run.machine.handle(InputsClaimed("w1", "node-1", (0, 1, 2)))
    run.machine.handle(InputsSucceeded("w1", (0, 1, 2)))
    taken = run_from_record(job_record(run, clock.now()), b"f", clock, validate=True)
    await store.put_many(input_pages(spec.job_id, [(str(n), INLINE + b"x") for n in range(40)]))
    for index in (0, 1, 2):
        taken.machine.handle(InputRecorded(index, succeeded=True))
    await service.job_driver.queue_unfinished(taken)
    claims = await store.claim(queue_name(spec.job_id), limit=100, lease_s=60)
    assert sorted(int(claim.item_id) for claim in claims) == list(range(3, 16))
