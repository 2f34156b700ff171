"""When main_service writes a job's record: a running job's before its client hears that
it runs (so that a main_service that restarts takes it over), or once it has run for
RECORD_AFTER_S; a job that ends before either has one record, the last. A small job's
input pages go in the same write as its first record."""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import httpx
import pytest

from burla.backends.memory import MemoryStore
from burla.core import stream_wire, wire
from burla.core.clock import WallClock
from burla.core.protocols import Data, Document
from burla.services.input_pages import page_key
from burla.services.main_service.job_records import RECORD_AFTER_S
from burla.services.main_service.service import MainService
from burla.services.store_keys import RUNNING_PREFIX, job_key, running_key
from tests.services.memory_main import memory_service, serving

pytestmark = pytest.mark.anyio
TOKEN = "s"  # memory_service's token
AUTH = {"authorization": f"Bearer {TOKEN}"}


class WriteCountingStore(MemoryStore):
    """A memory Store that notes each write of a job's record, running listing or input
    pages."""

    def __init__(self, clock: WallClock) -> None:
        super().__init__(clock)
        self.writes: list[tuple[str, ...]] = []

    def _note(self, keys: list[str]) -> None:
        if noted := tuple(k for k in keys if k.startswith(("jobs/", RUNNING_PREFIX, "inputs/"))):
            self.writes.append(noted)

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        self._note([key])
        return await super().put(key, data, if_version=if_version)

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        self._note(list(docs))
        return await super().put_many(docs, create_only=create_only)

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        self._note([key])
        return await super().delete(key, if_version=if_version)


def job_body(job_id: str, n_inputs: int) -> bytes:
    spec = {"n_inputs": n_inputs, "func_cpu": 1, "func_ram": 1}
    return wire.encode_many(
        [({"job_id": job_id, "spec": spec}, b"f"), *(({"i": n}, b"x") for n in range(n_inputs))]
    )


async def test_a_job_that_ends_at_once_is_written_once_and_never_listed_as_running() -> None:
    clock = WallClock()
    store = WriteCountingStore(clock)
    async with serving(memory_service(clock, store), TOKEN) as client:
        answer = await client.post("/jobs?wait=5", content=job_body("job-at-once", 0), headers=AUTH)
        assert stream_wire.read_stream(answer.content)[0].state == "succeeded"
        await anyio.sleep(2 * RECORD_AFTER_S)  # the last record follows the answer
    assert store.writes == [(job_key("job-at-once"),)]  # no inputs: no page
    record = await store.get(job_key("job-at-once"))
    assert record is not None
    assert record.data["state"] == "succeeded"


async def test_a_running_job_is_recorded_and_listed_before_its_client_hears_of_it() -> None:
    clock = WallClock()
    store = WriteCountingStore(clock)
    async with serving(memory_service(clock, store), TOKEN) as client:
        # No node ever boots on the memory compute provider: the job runs until canceled.
        answer = await client.post("/jobs?wait=0", content=job_body("job-waits", 2), headers=AUTH)
        assert stream_wire.read_stream(answer.content)[0].state == "running"
        listed = (running_key("job-waits"), job_key("job-waits"))
        assert store.writes == [(page_key("job-waits", 1), *listed)]
        record = await store.get(job_key("job-waits"))
        assert record is not None
        assert record.data["state"] == "running"
        assert "resume" in record.data  # what a main_service that restarts takes it over by


async def test_a_job_whose_client_waits_is_recorded_once_it_ran_a_while() -> None:
    clock = WallClock()
    store = WriteCountingStore(clock)
    body = job_body("job-long", 2)
    async with (
        serving(memory_service(clock, store), TOKEN) as client,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(lambda: client.post("/jobs?wait=1", content=body, headers=AUTH))
        await anyio.sleep(RECORD_AFTER_S / 5)
        assert store.writes == []
        await anyio.sleep(RECORD_AFTER_S * 3)
        listed = (running_key("job-long"), job_key("job-long"))
        assert store.writes == [(page_key("job-long", 1), *listed)]
        tasks.cancel_scope.cancel()


async def test_a_small_job_that_ends_before_its_record_writes_its_inputs_with_it() -> None:
    clock = WallClock()
    store = WriteCountingStore(clock)
    service = memory_service(clock, store)
    body = job_body("job-canceled", 2)
    async with serving(service, TOKEN) as client:
        answered: list[httpx.Response] = []

        async def submit() -> None:
            answered.append(await client.post("/jobs?wait=5", content=body, headers=AUTH))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(submit)
            await job_held(service, "job-canceled")
            canceled = await client.post("/jobs/job-canceled/cancel", headers=AUTH)
            assert canceled.status_code == 200
        assert stream_wire.read_stream(answered[0].content)[0].state == "canceled"
        await anyio.sleep(RECORD_AFTER_S)
    assert store.writes == [(page_key("job-canceled", 1), job_key("job-canceled"))]


async def job_held(service: MainService, job_id: str) -> None:
    """Once main_service holds the job, well before RECORD_AFTER_S."""
    with anyio.fail_after(RECORD_AFTER_S / 2):
        while job_id not in service.jobs:  # noqa: ASYNC110 (no event says so)
            await anyio.sleep(0.001)


async def test_the_inputs_of_a_job_not_recorded_yet_are_served() -> None:
    clock = WallClock()
    store = WriteCountingStore(clock)
    service = memory_service(clock, store)
    body = job_body("job-young", 2)
    async with (
        serving(service, TOKEN) as client,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(lambda: client.post("/jobs?wait=1", content=body, headers=AUTH))
        await job_held(service, "job-young")
        kept = await client.get("/jobs/job-young/inputs/1", headers=AUTH)
        assert kept.content == b"x"
        assert store.writes == [(page_key("job-young", 1),)]  # the pages, not the record
        tasks.cancel_scope.cancel()
