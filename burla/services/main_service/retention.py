"""Keeping finished jobs in the Store within a size: the longest finished go first.

A finished job's record, results, inputs, function and printed lines stay in the Store
(big ones in the blob store), so that its results can be read later (`job_results`,
`burla jobs show`) from any main_service, and its inputs run again. A function that
several jobs run is kept once (kept_functions), and goes with the last of them. Left
alone they only grow, so main_service keeps what finished jobs keep within
$BURLA_RESULTS_MAX_GB (default RESULTS_LIMIT_GB): after a job ends (once per
PRUNE_EVERY_S, or sooner after big results), and when the cluster's admin asks (`burla
local prune`, `burla cluster prune`), the jobs that finished longest ago go until the
rest fit. A running job is never touched. A job being removed is marked so first: one
removal cut short is finished by the next, and a reader meanwhile is told why its results
are gone.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from burla.core.models import JobState
from burla.core.protocols import BlobStore, Store
from burla.services.main_service.job_logs import logs_prefix
from burla.services.main_service.kept_functions import named_function
from burla.services.store_keys import JOBS_PREFIX, inputs_prefix, job_key, results_prefix

RESULTS_LIMIT_GB = 10.0
RESULTS_LIMIT_BYTES = int(RESULTS_LIMIT_GB * 2**30)
PRUNE_EVERY_S = 60.0
PRUNE_AFTER_SHARE = 0.1
"""Jobs whose results add up to this share of the limit are pruned for at once, however
soon after the last prune."""
REMOVED = "removed"
"""What a job record being removed says in its "removed" field."""


@dataclass(frozen=True)
class Forgotten:
    jobs: tuple[str, ...]
    """The finished jobs removed."""
    freed_bytes: int
    kept_bytes: int
    functions: frozenset[str] = frozenset()
    """The digests of the functions the records left name (see kept_functions)."""


async def forget_oldest(
    store: Store, blobs: BlobStore, limit_bytes: int, running: Collection[str]
) -> Forgotten:
    """Remove the jobs that finished longest ago until the results of the rest take at
    most `limit_bytes`; never one of `running`."""
    records = await _records(store)
    finished = sorted(
        (_ended_at(data), job_id, _kept_bytes(data), data)
        for job_id, data in records
        if job_id not in running and _finished(data)
    )
    total = sum(size for _, _, size, _ in finished)
    removed: list[str] = []
    freed = 0
    for _, job_id, size, data in finished:
        if total <= limit_bytes and not data.get(REMOVED):
            continue
        await remove_job(store, blobs, job_id, data)
        total -= size
        freed += size
        removed.append(job_id)
    gone = set(removed)
    left = (_function_of(data) for job_id, data in records if job_id not in gone)
    return Forgotten(tuple(removed), freed, total, frozenset(d for d in left if d is not None))


async def remove_job(store: Store, blobs: BlobStore, job_id: str, record: dict[str, Any]) -> None:
    """Mark the job's record removed, then delete its results (big ones are blobs, see
    result_pages), its inputs and function (input_pages; big ones are blobs too) and its
    lines, then the record."""
    if not record.get(REMOVED):
        await store.put(job_key(job_id), {**record, REMOVED: True})
    kept = record.get("kept") or {}
    for prefix in [results_prefix(job_id), *kept.get("blob_prefixes", ())]:
        await blobs.delete_prefix(prefix)
    for prefix in (results_prefix(job_id), inputs_prefix(job_id), logs_prefix(job_id)):
        while docs := await store.list(prefix):
            for doc in docs:
                await store.delete(doc.key)
    await store.delete(job_key(job_id))


async def _records(store: Store) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    after = ""
    while docs := await store.list(JOBS_PREFIX, after=after):
        after = docs[-1].key
        found += [(doc.key.removeprefix(JOBS_PREFIX), doc.data) for doc in docs]
    return found


def _finished(record: dict[str, Any]) -> bool:
    return record.get("state") != JobState.RUNNING.value


def _ended_at(record: dict[str, Any]) -> float:
    """When the job ended; 0 for a record that does not say (they go first)."""
    return float(record.get("ended_at") or 0.0)


def _function_of(record: dict[str, Any]) -> str | None:
    """The digest of the function the record names (kept_functions), if it names one."""
    return named_function(record.get("kept") or record.get("resume") or {})


def _kept_bytes(record: dict[str, Any]) -> int:
    """What a finished job keeps in the Store: its results and its inputs."""
    kept = record.get("kept") or {}
    return int(record.get("result_bytes") or 0) + int(kept.get("input_bytes") or 0)
