"""What people are shown of a job, built from main_service's state: lines with their input,
failures as text (never by unpickling), one letter per input."""

from __future__ import annotations

import json

from burla.core import inputs as i
from burla.core import stream_wire
from burla.core.models import JobSpec
from burla.services.main_service import views
from burla.services.main_service.jobs import KEPT_TRACEBACKS, JobRun

NOT_A_PICKLE = b"\x80\x05 bytes only a client may unpickle"


def job(n_inputs: int) -> JobRun:
    machine = i.InputMachine(n_inputs)
    spec = JobSpec(job_id="job-views", n_inputs=n_inputs)
    return JobRun(spec, b"f", None, machine, submitted_at=1000.0)


def test_lines_carry_their_input_and_failures_read_as_text():
    run = job(4)
    run.publish(stream_wire.JobLine(0, "stdout", "hello from 0\n"))
    run.publish(stream_wire.JobResult(0, "ok"), NOT_A_PICKLE)
    run.publish(stream_wire.JobLine(1, "stderr", "warning\n"))
    run.keep_traceback(1, "Traceback ...\nValueError: bad\n")
    run.publish(stream_wire.JobResult(1, "raised"), NOT_A_PICKLE)
    text = {"type": "x.Odd", "message": "odd", "traceback": "Traceback ...\nOdd: odd\n"}
    run.publish(stream_wire.JobResult(2, "raised_text"), json.dumps(text).encode())
    run.publish(
        stream_wire.JobResult(3, "worker_died"), json.dumps({"message": "input 3 died"}).encode()
    )

    lines, cursor = run.log.page(0, 100)
    assert cursor == 5
    assert lines == [
        {"input": 0, "stream": "stdout", "text": "hello from 0\n"},
        {"input": 1, "stream": "stderr", "text": "warning\n"},
        {"input": 1, "stream": "error", "text": "Traceback ...\nValueError: bad\n"},
        {"input": 2, "stream": "error", "text": "Traceback ...\nOdd: odd\n"},
        {"input": 3, "stream": "error", "text": "input 3 died"},
    ]
    assert [e["input"] for e in views.job_errors(run)] == [1, 2, 3]
    later, cursor = run.log.page(cursor, 100)
    assert (later, cursor) == ([], 5)


def test_lines_are_read_a_page_at_a_time():
    run = job(1)
    for n in range(5):
        run.publish(stream_wire.JobLine(0, "stdout", f"{n}\n"))
    first, cursor = run.log.page(0, 3)
    rest, cursor = run.log.page(cursor, 3)
    assert [line["text"] for line in first + rest] == ["0\n", "1\n", "2\n", "3\n", "4\n"]
    assert cursor == 5


def test_a_raised_input_whose_traceback_was_not_kept_says_so():
    run = job(KEPT_TRACEBACKS + 2)
    for n in range(KEPT_TRACEBACKS + 1):
        run.keep_traceback(n, f"traceback {n}")
    run.keep_traceback(0, "the latest try's traceback")  # an input already kept updates
    run.publish(stream_wire.JobResult(KEPT_TRACEBACKS, "raised"), NOT_A_PICKLE)
    run.publish(stream_wire.JobResult(0, "raised"), NOT_A_PICKLE)
    lines, _ = run.log.page(0, 10)
    assert lines[0]["text"] == f"input {KEPT_TRACEBACKS} raised (its traceback was not kept)"
    assert lines[1]["text"] == "the latest try's traceback"


def test_summary_letters_and_busy_cpus():
    run = job(4)
    run.machine.handle(i.InputsClaimed("w1", "node-1", (0, 1)))
    run.machine.handle(i.InputsSucceeded("w1", (0,)))
    summary = views.job_summary(run, 1000.0)
    assert (summary["finished"], summary["n_inputs"], summary["failed"]) == (1, 4, 0)
    assert summary["submitted_at"] == 1000.0
    assert views.status_letters(run, 10) == "srqq"
    assert views.status_letters(run, 2) == "sr"
    assert views.busy_cpus(run) == 1
    statuses = views.input_statuses(run, after=0, limit=2)
    assert [(s["index"], s["status"], s["worker"]) for s in statuses] == [
        (1, "leased", "w1"),
        (2, "queued", None),
    ]
