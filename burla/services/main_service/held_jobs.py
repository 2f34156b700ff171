"""Which finished jobs main_service keeps in memory, and for how long.

A finished job stays in memory so that its client can read the rest of its results, and
people can look at its inputs (`burla jobs show`); its results and lines are in the Store
for good. Held for FORGET_AFTER_S each, the jobs of a main_service that runs many a
second would fill its memory, so once more than HELD_JOBS are held, or their results
take more than HELD_BYTES, those finished longest ago whose stream was read to its end go
first. One whose client is still reading stays until FORGET_AFTER_S.
"""

from __future__ import annotations

from burla.core.clock import Clock
from burla.services.main_service.jobs import JobRun

FORGET_AFTER_S = 600.0
"""How long a finished job stays in memory at most."""
HELD_JOBS = 1000
HELD_BYTES = 256 * 2**20
TRIM_EVERY_S = 5.0


class HeldJobs:
    """The finished jobs among `jobs` (main_service's jobs by id), oldest first."""

    def __init__(self, jobs: dict[str, JobRun], clock: Clock) -> None:
        self.jobs = jobs
        self.clock = clock
        self._finished: dict[str, JobRun] = {}
        self._bytes = 0

    def add(self, run: JobRun) -> None:
        self._finished[run.spec.job_id] = run
        self._bytes += run.result_bytes
        self.trim()

    def forget(self, job_id: str) -> None:
        run = self._finished.pop(job_id, None)
        if run is None:
            return
        self._bytes -= run.result_bytes
        if self.jobs.get(job_id) is run:
            del self.jobs[job_id]

    def trim(self) -> None:
        """Forget the jobs past FORGET_AFTER_S, and read ones beyond the limits."""
        too_old = self.clock.now() - FORGET_AFTER_S
        count, size = len(self._finished), self._bytes
        going: list[str] = []
        for job_id, run in self._finished.items():  # oldest first: most calls stop at one
            expired = run.ended_at is not None and run.ended_at <= too_old
            if not expired and count <= HELD_JOBS and size <= HELD_BYTES:
                break
            if expired or run.read_to_end:
                going.append(job_id)
                count, size = count - 1, size - run.result_bytes
        for job_id in going:
            self.forget(job_id)
