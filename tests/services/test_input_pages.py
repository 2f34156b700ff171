"""A job's inputs and function kept beside its results: pages keyed by their last input,
read back one input at a time, served to the job's owner, and removed with the job."""

from __future__ import annotations

import pytest

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.client.uploads import job_body
from burla.core.clock import WallClock
from burla.core.errors import NotFoundError
from burla.services.input_pages import (
    BLOB_KIND,
    INLINE_KIND,
    PAGE_INPUTS,
    input_pages,
    kept_bytes,
    kept_input,
)
from burla.services.main_service.retention import forget_oldest
from burla.services.result_pages import PAGE_BYTES
from burla.services.store_keys import IN_BLOB, INLINE, inputs_prefix
from tests.services.memory_main import memory_service, serving
from tests.services.test_takeover import until_saved

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def items(n: int, size: int = 2) -> list[tuple[str, bytes]]:
    return [(str(i), INLINE + bytes([i % 256]) * size) for i in range(n)]


def test_inputs_are_cut_into_pages_keyed_by_their_last_input() -> None:
    pages = input_pages("job-1", items(PAGE_INPUTS + 3))
    assert [key.removeprefix(inputs_prefix("job-1")) for key in pages] == [
        f"{PAGE_INPUTS - 1:09d}",
        f"{PAGE_INPUTS + 2:09d}",
    ]
    assert kept_bytes(pages) == 2 * (PAGE_INPUTS + 3)
    by_bytes = input_pages("job-1", [("0", INLINE + bytes(PAGE_BYTES)), ("1", IN_BLOB + b"k")])
    assert [page["kinds"] for page in by_bytes.values()] == [[INLINE_KIND], [BLOB_KIND]]


async def test_each_input_is_read_back_from_the_page_that_holds_it() -> None:
    store = MemoryStore(WallClock())
    kept = [*items(2 * PAGE_INPUTS + 1), (str(2 * PAGE_INPUTS + 1), IN_BLOB + b"uploads/k")]
    await store.put_many(input_pages("job-1", kept))
    for index in (0, PAGE_INPUTS - 1, PAGE_INPUTS, 2 * PAGE_INPUTS):
        assert await kept_input(store, "job-1", index) == (INLINE_KIND, bytes([index % 256]) * 2)
    assert await kept_input(store, "job-1", 2 * PAGE_INPUTS + 1) == (BLOB_KIND, b"uploads/k")
    with pytest.raises(NotFoundError, match=f"no input {2 * PAGE_INPUTS + 2} kept"):
        await kept_input(store, "job-1", 2 * PAGE_INPUTS + 2)
    with pytest.raises(NotFoundError):
        await kept_input(store, "job-2", 0)


async def test_a_jobs_inputs_and_function_are_served_while_it_runs_and_after() -> None:
    clock = WallClock()
    blobs = MemoryBlobStore(clock)
    service = memory_service(clock, blobs=blobs)
    job_id = "job-0123456789"
    uploaded = f"uploads/admin/{job_id}/1"
    await blobs.put(uploaded, b"big input")
    spec = {"job_id": job_id, "spec": {"n_inputs": 2, "func_cpu": 1, "func_ram": 1}}
    body = job_body(spec, b"the function", [b"small", b""], {1: uploaded})
    async with serving(service, TOKEN) as client:
        assert (await client.post("/jobs", content=body, headers=AUTH)).status_code == 200
        await until_saved(service.store, job_id, "running")

        async def kept() -> tuple[bytes, bytes, bytes]:
            first = await client.get(f"/jobs/{job_id}/inputs/0", headers=AUTH)
            second = await client.get(f"/jobs/{job_id}/inputs/1", headers=AUTH)
            function = await client.get(f"/jobs/{job_id}/function", headers=AUTH)
            return first.content, second.content, function.content

        assert await kept() == (b"small", b"big input", b"the function")
        assert (await client.get(f"/jobs/{job_id}/inputs/2", headers=AUTH)).status_code == 404
        await client.post(f"/jobs/{job_id}/cancel", headers=AUTH)
        await until_saved(service.store, job_id, "canceled")
        assert await blobs.list("uploads/") == [uploaded], "kept with the job's results"
        service.jobs.pop(job_id)  # forgotten: from the record from now on
        assert await kept() == (b"small", b"big input", b"the function")
        assert (await client.post("/users", json={"name": "bob"}, headers=AUTH)).is_success
        token = await client.post("/tokens", json={"user": "bob"}, headers=AUTH)
        bob = {"authorization": f"Bearer {token.json()['token']}"}
        assert (await client.get(f"/jobs/{job_id}/function", headers=bob)).status_code == 404
        assert (await client.get(f"/jobs/{job_id}/inputs/0", headers=bob)).status_code == 404

        forgotten = await forget_oldest(service.store, blobs, 0, running=set())
        assert forgotten.jobs == (job_id,)
        assert await service.store.list(inputs_prefix(job_id)) == []
        assert await blobs.list("uploads/") == []
        assert (await client.get(f"/jobs/{job_id}/function", headers=AUTH)).status_code == 404
