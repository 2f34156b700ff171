"""Finished jobs held in main_service's memory: read ones go first beyond the limits,
none stays past FORGET_AFTER_S, and one whose client still reads stays until then."""

from __future__ import annotations

from burla.core import inputs as i
from burla.core import stream_wire
from burla.core.clock import ManualClock
from burla.core.models import JobSpec
from burla.services.main_service import held_jobs
from burla.services.main_service.held_jobs import FORGET_AFTER_S, HeldJobs
from burla.services.main_service.jobs import JobRun


def finished(jobs: dict[str, JobRun], clock: ManualClock, n: int, *, read: bool) -> JobRun:
    spec = JobSpec(job_id=f"job-{n:05d}", n_inputs=1)
    run = JobRun(spec, b"f", None, i.InputMachine(1), submitted_at=clock.now())
    run.publish(stream_wire.JobResult(0, "ok"), b"x" * 1000)
    run.publish(stream_wire.JobDone("succeeded", None))
    run.ended_at = clock.now()
    if read:
        assert run.events_after(0)  # its client had the whole stream
    jobs[spec.job_id] = run
    return run


def test_beyond_the_count_the_read_jobs_finished_longest_ago_go_first(monkeypatch):
    monkeypatch.setattr(held_jobs, "HELD_JOBS", 10)
    clock, jobs = ManualClock(), {}
    held = HeldJobs(jobs, clock)
    unread = finished(jobs, clock, 0, read=False)
    held.add(unread)
    for n in range(1, 15):
        clock.advance(1)
        held.add(finished(jobs, clock, n, read=True))
    assert len(jobs) == 10
    assert unread.spec.job_id in jobs  # its client is still reading
    assert sorted(jobs)[1:] == [f"job-{n:05d}" for n in range(6, 15)]


def test_beyond_the_bytes_read_jobs_go_too(monkeypatch):
    monkeypatch.setattr(held_jobs, "HELD_BYTES", 5500)
    clock, jobs = ManualClock(), {}
    held = HeldJobs(jobs, clock)
    for n in range(8):
        held.add(finished(jobs, clock, n, read=True))
    assert sorted(jobs) == [f"job-{n:05d}" for n in range(3, 8)]


def test_no_finished_job_stays_past_forget_after_and_a_running_one_is_never_touched():
    clock, jobs = ManualClock(), {}
    held = HeldJobs(jobs, clock)
    held.add(finished(jobs, clock, 0, read=False))
    running = JobRun(JobSpec(job_id="job-running", n_inputs=1), b"f", None, i.InputMachine(1))
    jobs["job-running"] = running
    clock.advance(FORGET_AFTER_S - 1)
    held.trim()
    assert "job-00000" in jobs
    clock.advance(1)
    held.trim()
    assert list(jobs) == ["job-running"]


def test_a_job_forgotten_for_retention_leaves_the_held_count(monkeypatch):
    monkeypatch.setattr(held_jobs, "HELD_JOBS", 2)
    clock, jobs = ManualClock(), {}
    held = HeldJobs(jobs, clock)
    held.add(finished(jobs, clock, 0, read=True))
    held.forget("job-00000")
    held.forget("job-00000")  # twice (retention, then time): nothing left to do
    held.add(finished(jobs, clock, 1, read=True))
    held.add(finished(jobs, clock, 2, read=True))
    assert sorted(jobs) == ["job-00001", "job-00002"]
