"""A job's record and input pages in the Store: when each is written, and what with.

A running job's record is written, and the job listed as running, once its client is
told that it runs or once it has run for RECORD_AFTER_S, whichever comes first; a job
that ends before has one record, its last. A small job's input pages go with its first
record, or before an input is queued again or served. The record names the job's
function by digest (kept_functions).
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from burla.core.clock import Clock
from burla.core.models import JobState
from burla.services.input_pages import input_pages, kept_bytes
from burla.services.main_service.jobs import JobRun, job_record
from burla.services.main_service.kept_functions import KeptFunctions
from burla.services.retrying import PatientStore
from burla.services.store_keys import job_key, running_key

RECORD_AFTER_S = 0.05
"""How long a job runs before its record is written, unless its client is told first
that it runs: a short job ends before, and has one record only, the last, written once
its client has its answer (three writes fewer: the running record, its listing and the
listing's removal)."""


class JobRecords:
    def __init__(self, patient: PatientStore, clock: Clock) -> None:
        """`patient` waits for a Store that is down to come back."""
        self.patient = patient
        self.clock = clock
        self.functions = KeptFunctions(patient)

    @staticmethod
    def cut_pages(
        run: JobRun, items: list[tuple[str, bytes]], digests: Mapping[int, bytes] | None
    ) -> None:
        """Cut the job's input pages, to be written (keep_pages, or with its first record)."""
        run.pages_to_write = input_pages(run.spec.job_id, items, digests)
        run.input_bytes = kept_bytes(run.pages_to_write)

    async def record_later(self, run: JobRun) -> None:
        """Write the record of a job that still runs RECORD_AFTER_S after it started, if
        its client's answer did not write it sooner (record_running); a job that ended by
        then has one record only, the last."""
        await anyio.sleep(RECORD_AFTER_S)
        await self.record_running(run)

    async def record_running(self, run: JobRun) -> None:
        """Have the Store hold the record of a running job, and list it as running, so
        that a main_service that restarts takes it over; the job's client is answered
        after it. Until then nothing is lost if main_service stops: a client whose
        submission went unanswered sends it again, and the job starts anew. (A job that
        ended before it was recorded, and whose main_service stops after answering its
        client and before writing its last record, is left with no record: its client
        has its results, and they are in the Store, but the job is not listed.)"""
        if not run.state.finished and not run.listed_running:
            await self.save(run)

    async def keep_pages(self, run: JobRun) -> None:
        """Write the job's input pages if they are not in the Store yet: before a queue
        item that reads its input from them."""
        if run.pages_to_write is not None:
            async with run.record_lock:
                if run.pages_to_write is not None:
                    await self.patient.put_many(run.pages_to_write)
                    run.pages_to_write = None

    async def save(self, run: JobRun) -> None:
        """The job's record in the Store: its spec, its state, and why it failed. Writes
        take turns and each writes the state of its turn, so the last one is the latest.
        A running job is listed as such in the write of its first record, and no longer
        once its record says it ended: every running record is listed. Input pages not
        written yet go with the record, in the same write."""
        job_id = run.spec.job_id
        async with run.record_lock:
            if run.function is not None:
                await self.functions.keep(run.function, run.function_digest)
            record = job_record(run, self.clock.now())
            pages = run.pages_to_write or {}
            if not run.state.finished and not run.listed_running:
                listed = {running_key(job_id): {}, job_key(job_id): record}
                await self.patient.put_many({**pages, **listed})
                run.listed_running = True
            elif pages:
                await self.patient.put_many({**pages, job_key(job_id): record})
            else:
                await self.patient.put(job_key(job_id), record)
            run.pages_to_write = None
            if record["state"] != JobState.RUNNING.value and run.listed_running:
                await self.patient.delete(running_key(job_id))
                run.listed_running = False
            if "ended_at" in record:
                run.ended_saved.set()
