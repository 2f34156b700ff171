"""Resuming a job, in its pure parts: which inputs run, how two jobs' inputs are
compared, the input machine of a job that resumes another, the digest a big input is
uploaded with, and the file of this machine's recent jobs."""

from __future__ import annotations

import io
import itertools
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burla.client.recent_jobs import KEPT, RecentJob, recent, remember
from burla.client.serialize import dump_input
from burla.client.uploads import upload
from burla.core.inputs import (
    CancelJob,
    FinishJob,
    InputMachine,
    InputRaised,
    InputsClaimed,
    InputsSucceeded,
    InputStatus,
    Resumed,
)
from burla.core.models import JobState
from burla.core.resume import indices_in, input_digest, input_mismatch, plan_resume, ranges


def test_only_inputs_without_a_success_run_and_failed_only_skips_those_never_run():
    results = {0: True, 1: False, 3: True}  # 2 and 4 never ran
    plan = plan_resume(5, results, failed_only=False)
    assert (plan.reused, plan.skipped, plan.to_run) == ((0, 3), (), 3)
    plan = plan_resume(5, results, failed_only=True)
    assert (plan.reused, plan.skipped, plan.to_run) == ((0, 3), (2, 4), 1)


def test_inputs_differ_by_count_or_at_the_first_input_whose_bytes_differ():
    old = [input_digest(b"a"), input_digest(b"b"), input_digest(b"c")]
    assert input_mismatch("job-1", old, list(old)) is None
    by_count = input_mismatch("job-1", old, old[:2])
    assert by_count is not None
    assert by_count.startswith("job job-1 has 3 inputs and this call 2")
    changed = [old[0], input_digest(b"B"), input_digest(b"C")]
    message = input_mismatch("job-1", old, changed)
    assert message is not None
    assert message.startswith("input 1 is not input 1 of job job-1")
    assert "or start a new job without resume=" in message
    unknown = input_mismatch("job-1", [old[0], None, old[2]], old)
    assert unknown is not None
    assert "input 1 of job job-1 was kept without a digest" in unknown
    missing = input_mismatch("job-1", old, [old[0], None, old[2]])
    assert missing is not None
    assert missing.startswith("input 1 is not input 1")


@given(st.sets(st.integers(0, 200)))
def test_ranges_keep_a_set_of_inputs(indices):
    runs = ranges(indices)
    assert indices_in(runs) == tuple(sorted(indices))
    assert all(a[1] + 1 < b[0] for a, b in itertools.pairwise(runs)), "runs are merged"


def test_a_resumed_job_runs_only_what_is_left_and_ends_as_its_inputs_did():
    machine = InputMachine(4)
    assert machine.handle(Resumed((0, 2))) == []
    assert machine.queued == 2
    assert [r.status for r in machine.inputs][:3:2] == [InputStatus.SUCCEEDED] * 2
    machine.handle(InputsClaimed("w", "node", (1, 3)))
    machine.handle(InputsSucceeded("w", (1,)))
    assert machine.handle(InputsSucceeded("w", (3,))) == [FinishJob(JobState.SUCCEEDED)]

    skipping = InputMachine(3)
    skipping.handle(Resumed((0,), skipped=(2,)))
    skipping.handle(InputsClaimed("w", "node", (1,)))
    # Every input it ran succeeded, but one never ran: it did not deliver every result.
    assert skipping.handle(InputsSucceeded("w", (1,))) == [FinishJob(JobState.CANCELED)]
    assert skipping.outcomes[2] is InputStatus.CANCELED

    failing = InputMachine(3)
    failing.handle(Resumed((), skipped=(0,)))
    failing.handle(InputsClaimed("w", "node", (1, 2)))
    failing.handle(InputRaised("w", 1))
    assert failing.handle(InputsSucceeded("w", (2,))) == [FinishJob(JobState.FAILED)]


def test_a_resumed_job_with_nothing_left_ends_at_once():
    machine = InputMachine(2)
    assert machine.handle(Resumed((0, 1))) == [FinishJob(JobState.SUCCEEDED)]
    assert InputMachine(2).handle(Resumed((0,), (1,))) == [FinishJob(JobState.CANCELED)]
    canceled = InputMachine(2)
    canceled.handle(CancelJob())
    assert canceled.handle(Resumed((0,))) == [], "a finished job takes nothing"


def test_a_big_input_is_uploaded_with_the_digest_of_its_bytes(tmp_path: Path):
    value = b"x" * 100_000
    pickled = io.BytesIO()
    dump_input(0, value, True, pickled)
    target = tmp_path / "blobs" / "input-0"
    url = f"file://{target}?signature=s"
    assert upload(url, lambda file: dump_input(0, value, True, file), "input 0") == input_digest(
        pickled.getvalue()
    )
    assert target.read_bytes() == pickled.getvalue()
    assert upload(url, b"pickled", "input 0") == input_digest(b"pickled")


def job(n: int, cluster: str = "local:/c") -> RecentJob:
    return RecentJob(f"job-{n:04d}", float(n), "f", cluster)


def test_recent_jobs_are_listed_newest_first_for_their_cluster(tmp_path: Path):
    path = tmp_path / "jobs.jsonl"
    remember(job(1), path)
    remember(job(2, cluster="gcp"), path)
    remember(RecentJob("job-0003", 3.0, "g", "local:/c", resumes="job-0001"), path)
    assert [j.job_id for j in recent(path)] == ["job-0003", "job-0002", "job-0001"]
    mine = recent(path, "local:/c")
    assert [(j.job_id, j.resumes) for j in mine] == [("job-0003", "job-0001"), ("job-0001", None)]


def test_the_file_keeps_the_last_jobs_and_skips_lines_it_cannot_read(tmp_path: Path):
    path = tmp_path / "jobs.jsonl"
    for n in range(3 * KEPT):
        remember(job(n), path)
    listed = recent(path)
    assert len(listed) == KEPT
    assert listed[0].job_id == f"job-{3 * KEPT - 1:04d}"
    assert len(path.read_text().splitlines()) <= 2 * KEPT + 1, "the file is cut back"
    with path.open("a") as file:
        file.write('{"job_id": "job-cut-sh')  # a writer that crashed mid-line
        file.write("\n" + json.dumps({"unknown": 1}) + "\n")
    remember(job(9999), path)
    assert recent(path)[0].job_id == "job-9999"


def test_a_file_that_cannot_be_written_fails_no_job(tmp_path: Path):
    if os.geteuid() == 0:
        blocked = tmp_path / "a-file"  # root writes anywhere: a file where the folder goes
        blocked.write_text("")
        path = blocked / "jobs.jsonl"
    else:
        tmp_path.chmod(0o500)
        path = tmp_path / "jobs.jsonl"
    remember(job(1), path)
    assert recent(path) == []


@pytest.mark.parametrize("line", ["", "[]", "null", '{"job_id": 1}'])
def test_odd_lines_are_skipped(tmp_path: Path, line: str):
    path = tmp_path / "jobs.jsonl"
    path.write_text(line + "\n")
    remember(job(1), path)
    assert [j.job_id for j in recent(path)] == ["job-0001"]
