"""A job that resumes another, checked before it starts: the job it resumes, its inputs
against the new job's, and the results the new job takes from it (burla.core.resume).

The new job is a job of its own, with all the inputs: the results it takes are copied
into it (JobDriver.start), so it is read, resumed and removed like any other job, and the
job it resumes may go first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio

from burla.core.errors import ResumeError, ResumeMismatchError
from burla.core.models import JobSpec, JobState
from burla.core.protocols import BlobStore, Store
from burla.core.resume import ResumePlan, input_digest, input_mismatch, plan_resume
from burla.services.input_pages import kept_digests
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.retention import REMOVED
from burla.services.main_service.users import may_see, owner_of
from burla.services.result_pages import stored_results
from burla.services.store_keys import INLINE, job_key

GONE = (
    "finished jobs are removed, the longest finished first, once their results pass the "
    "cluster's BURLA_RESULTS_MAX_GB"
)

RECORD_WAIT_S = 30.0
"""How long a job resumed the moment it ended waits for its record to be written and its
nodes to be reset."""


@dataclass(frozen=True)
class Resumption:
    plan: ResumePlan
    results: dict[int, bytes]
    """The pickled result of each reused input, to copy."""


async def resumption(
    store: Store,
    blobs: BlobStore,
    jobs: Mapping[str, JobRun],
    job: JobSpec,
    owner: str,
    items: Sequence[tuple[str, bytes]],
    digests: Mapping[int, bytes],
) -> Resumption:
    """What job `job` (whose spec names the job it resumes) takes from that job; a
    ResumeError if it cannot be resumed, a ResumeMismatchError if the inputs differ."""
    old = str(job.resumes)
    held = jobs.get(old)
    if held is not None and held.state.finished:
        # Its client heard of its end before its record was written: resumed at once, it
        # waits for the record, and for its nodes to have written what they finished as
        # it was stopped (within RECORD_WAIT_S, or the Store says what it says).
        with anyio.move_on_after(RECORD_WAIT_S):
            await held.ended_saved.wait()
            await held.nodes_reset.wait()
    doc = await store.get(job_key(old))
    if (held is None or not may_see(owner, held.owner)) and (
        doc is None or not may_see(owner, owner_of(doc.data))
    ):
        raise ResumeError(
            f"there is no job {old} to resume (check the id with `burla jobs --mine`; {GONE})"
        )
    state = held.state if held is not None else JobState(doc.data["state"]) if doc else None
    if state is not None and not state.finished:
        raise ResumeError(
            f"job {old} is still running: wait for its results (job_results({old!r}), or "
            f"`burla jobs result {old}`), or cancel it (`burla jobs cancel {old}`) and "
            "resume it then"
        )
    if doc is None or doc.data.get(REMOVED) or "kept" not in doc.data:
        raise ResumeError(
            f"job {old} no longer keeps its inputs and results ({GONE}), or ended before "
            "burla kept them: run it as a new job, without resume="
        )
    n_inputs = int(doc.data["spec"]["n_inputs"])
    before = await kept_digests(store, old)
    if len(before) < n_inputs:
        raise ResumeError(f"job {old} no longer keeps all its inputs ({GONE}); run a new job")
    now: list[bytes | None] = [None] * len(items)
    for item_id, data in items:
        now[int(item_id)] = _digest(int(item_id), data, digests)
    mismatch = input_mismatch(old, before, now)
    if mismatch is not None:
        raise ResumeMismatchError(mismatch)
    stored = await stored_results(store, blobs, old)
    succeeded = {index: kind == "ok" for index, (kind, _) in stored.items()}
    plan = plan_resume(n_inputs, succeeded, job.resume_failed_only)
    return Resumption(plan, {index: stored[index][1] for index in plan.reused})


def _digest(index: int, data: bytes, digests: Mapping[int, bytes]) -> bytes | None:
    """The digest of a queue item's input: of its bytes, or (a big input) as sent."""
    if data[:1] == INLINE:
        return input_digest(data[1:])
    return digests.get(index)
