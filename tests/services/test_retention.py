"""Finished jobs in the Store kept within a size: the longest finished go first, with
their results and lines; a running job is never touched."""

from __future__ import annotations

from typing import Any

import pytest

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core.clock import ManualClock
from burla.services.main_service.job_logs import logs_prefix
from burla.services.main_service.retention import REMOVED, Forgotten, forget_oldest
from burla.services.result_pages import PAGE_BYTES, pages, write_results
from burla.services.store_keys import job_key, results_prefix

pytestmark = pytest.mark.anyio


async def put_job(
    store: MemoryStore, job_id: str, *, state: str, ended_at: float | None, results: int
) -> None:
    record: dict[str, Any] = {"spec": {"job_id": job_id}, "state": state}
    if ended_at is not None:
        record |= {"ended_at": ended_at, "result_bytes": 100 * results}
    await store.put(job_key(job_id), record)
    for n in range(results):  # a page each
        await store.put_many(pages(job_id, [(n, "ok", b"x" * 100, f"delivery-{n}")]))
    await store.put(f"{logs_prefix(job_id)}t", {"lines": []})


async def kept(store: MemoryStore, job_id: str) -> tuple[bool, int, int]:
    """Whether the job's record is there, and how many results and log documents."""
    record = await store.get(job_key(job_id))
    results = await store.list(results_prefix(job_id))
    logs = await store.list(logs_prefix(job_id))
    return record is not None, len(results), len(logs)


async def test_the_longest_finished_jobs_go_until_the_rest_fit() -> None:
    store, blobs = MemoryStore(ManualClock()), MemoryBlobStore()
    await put_job(store, "job-new", state="succeeded", ended_at=30.0, results=2)
    await put_job(store, "job-old", state="failed", ended_at=10.0, results=3)
    await put_job(store, "job-mid", state="canceled", ended_at=20.0, results=2)
    await put_job(store, "job-running", state="running", ended_at=None, results=4)

    big = b"x" * (PAGE_BYTES + 1)
    for job_id in ("job-old", "job-new"):
        await write_results(store, blobs, job_id, [(99, "ok", big, "delivery-99")])
    assert len(await blobs.list("results/")) == 2

    forgotten = await forget_oldest(store, blobs, limit_bytes=450, running=set())

    assert forgotten == Forgotten(jobs=("job-old",), freed_bytes=300, kept_bytes=400)
    assert await kept(store, "job-old") == (False, 0, 0)
    assert await blobs.list("results/job-old/") == [], "its big result went with it"
    assert len(await blobs.list("results/job-new/")) == 1
    assert await kept(store, "job-mid") == (True, 2, 1)
    assert await kept(store, "job-new") == (True, 3, 1)
    assert await kept(store, "job-running") == (True, 4, 1)

    forgotten = await forget_oldest(store, blobs, limit_bytes=0, running=set())
    assert forgotten == Forgotten(jobs=("job-mid", "job-new"), freed_bytes=400, kept_bytes=0)
    assert await kept(store, "job-running") == (True, 4, 1), "a running job is never removed"


async def test_a_job_the_service_runs_is_kept_whatever_its_record_says() -> None:
    store, blobs = MemoryStore(ManualClock()), MemoryBlobStore()
    await put_job(store, "job-taken-over", state="succeeded", ended_at=1.0, results=1)
    forgotten = await forget_oldest(store, blobs, limit_bytes=0, running={"job-taken-over"})
    assert forgotten.jobs == ()
    assert await kept(store, "job-taken-over") == (True, 1, 1)


async def test_a_removal_cut_short_is_finished_by_the_next_prune() -> None:
    store, blobs = MemoryStore(ManualClock()), MemoryBlobStore()
    await put_job(store, "job-half-gone", state="succeeded", ended_at=1.0, results=2)
    record = await store.get(job_key("job-half-gone"))
    assert record is not None
    await store.put(job_key("job-half-gone"), {**record.data, REMOVED: True})
    first_page, _ = await store.list(results_prefix("job-half-gone"))
    await store.delete(first_page.key)

    forgotten = await forget_oldest(store, blobs, limit_bytes=10**9, running=set())

    assert forgotten.jobs == ("job-half-gone",), "under the limit, but already being removed"
    assert await kept(store, "job-half-gone") == (False, 0, 0)
