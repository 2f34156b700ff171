"""A job's function is kept in the Store once however many jobs run it: records name it by
digest; it goes when no record names it and no job held in memory runs it; a record that
holds its function itself (as records did before) still serves it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from burla.backends.memory import MemoryStore
from burla.core import wire
from burla.core.clock import WallClock
from burla.core.protocols import Document
from burla.services.main_service.kept_functions import (
    FUNCTIONS_PREFIX,
    KeptFunctions,
    function_digest,
    function_key,
    read_function,
)
from burla.services.main_service.retention import REMOVED
from burla.services.store_keys import job_key
from tests.services.memory_main import memory_service, serving

pytestmark = pytest.mark.anyio
TOKEN = "s"  # memory_service's token
AUTH = {"authorization": f"Bearer {TOKEN}"}
FUNCTION = b"a function that many jobs run"


def job_body(job_id: str, function: bytes = FUNCTION) -> bytes:
    spec = {"n_inputs": 0, "func_cpu": 1, "func_ram": 1}
    return wire.encode_many([({"job_id": job_id, "spec": spec}, function)])


async def until_ended(store: MemoryStore, job_id: str) -> dict[str, Any]:
    with anyio.fail_after(10):
        while True:  # the Store has no event to wait for
            doc = await store.get(job_key(job_id))
            if doc is not None and "ended_at" in doc.data:
                return doc.data
            await anyio.sleep(0.01)


async def to_be_removed(store: MemoryStore, job_id: str) -> None:
    """Mark a finished job as one whose removal began: the next prune removes it."""
    record = await until_ended(store, job_id)
    await store.put(job_key(job_id), {**record, REMOVED: True})


async def test_jobs_of_one_function_keep_it_once_until_the_last_of_them_goes() -> None:
    clock = WallClock()
    service = memory_service(clock)
    store = service.store
    async with serving(service, TOKEN) as client:
        for job_id, function in (("job-first-01", FUNCTION), ("job-second-2", FUNCTION)):
            await client.post("/jobs?wait=5", content=job_body(job_id, function), headers=AUTH)
        await client.post("/jobs?wait=5", content=job_body("job-other-03", b"g"), headers=AUTH)
        records = [await until_ended(store, j) for j in ("job-first-01", "job-second-2")]
        assert {r["kept"]["function_digest"] for r in records} == {function_digest(FUNCTION)}
        assert all("function" not in r["kept"] for r in records), "a record holds its function"
        await until_ended(store, "job-other-03")
        assert sorted(doc.key for doc in await store.list(FUNCTIONS_PREFIX)) == sorted(
            function_key(function_digest(f)) for f in (FUNCTION, b"g")
        )

        service.jobs.clear()  # forgotten from memory: served from the Store from now on
        answer = await client.get("/jobs/job-first-01/function", headers=AUTH)
        assert answer.content == FUNCTION

        await to_be_removed(store, "job-first-01")
        first = await service.job_driver.forget_finished(2**30)
        assert first.jobs == ("job-first-01",)
        assert await store.get(function_key(function_digest(FUNCTION))) is not None
        answer = await client.get("/jobs/job-second-2/function", headers=AUTH)
        assert answer.content == FUNCTION, "the function went with one of two jobs running it"

        for job_id in ("job-second-2", "job-other-03"):
            await to_be_removed(store, job_id)
        rest = await service.job_driver.forget_finished(2**30)
        assert set(rest.jobs) == {"job-second-2", "job-other-03"}
        assert await store.list(FUNCTIONS_PREFIX) == [], "a function no job names stayed"


async def test_a_function_a_job_held_in_memory_runs_is_not_swept() -> None:
    clock = WallClock()
    service = memory_service(clock)
    store = service.store
    async with serving(service, TOKEN) as client:
        for job_id in ("job-gone-0001", "job-held-0002"):
            await client.post("/jobs?wait=5", content=job_body(job_id), headers=AUTH)
        await until_ended(store, "job-held-0002")
        await store.delete(job_key("job-held-0002"))  # as before its record is written
        await to_be_removed(store, "job-gone-0001")
        assert (await service.job_driver.forget_finished(2**30)).jobs == ("job-gone-0001",)
        assert "job-held-0002" in service.jobs
        assert [doc.key for doc in await store.list(FUNCTIONS_PREFIX)] == [
            function_key(function_digest(FUNCTION))
        ], "the function of a job held in memory was swept"


class NamingWhileListed(MemoryStore):
    """A Store that, as a sweep lists the functions, has a job name one of them."""

    functions: KeptFunctions

    async def list(self, prefix: str, *, after: str = "", limit: int = 1000) -> list[Document]:
        listed = await super().list(prefix, after=after, limit=limit)
        if prefix == FUNCTIONS_PREFIX and not after:
            await self.functions.keep(FUNCTION)
        return listed


async def test_a_function_named_while_a_sweep_runs_is_kept() -> None:
    store = NamingWhileListed(WallClock())
    functions = store.functions = KeptFunctions(store)
    await functions.keep(FUNCTION)
    await functions.keep(b"g")
    assert await functions.sweep(named=()) == 1
    assert [doc.key for doc in await store.list(FUNCTIONS_PREFIX, after="0")] == [
        function_key(function_digest(FUNCTION))
    ]


async def test_a_function_swept_is_written_again_by_the_next_job_that_runs_it() -> None:
    store = MemoryStore(WallClock())
    functions = KeptFunctions(store)
    digest = await functions.keep(FUNCTION)
    assert await functions.sweep(named=()) == 1
    assert await functions.keep(FUNCTION) == digest
    assert await read_function(store, {"function_digest": digest}) == FUNCTION


async def test_a_record_that_holds_its_function_still_serves_it() -> None:
    clock = WallClock()
    service = memory_service(clock)
    record = {
        "spec": {"job_id": "job-from-before", "n_inputs": 0},
        "state": "succeeded",
        "owner": "admin",
        "ended_at": 1.0,
        "result_bytes": 0,
        "kept": {"input_bytes": 0, "function": b"old", "function_key": None, "blob_prefixes": []},
    }
    await service.store.put(job_key("job-from-before"), record)
    async with serving(service, TOKEN) as client:
        answer = await client.get("/jobs/job-from-before/function", headers=AUTH)
    assert answer.content == b"old"
    with pytest.raises(LookupError):
        await read_function(service.store, {"function_digest": "0" * 32})
