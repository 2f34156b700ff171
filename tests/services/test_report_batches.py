"""A node's report of many results: each result reaches the job's stream once and in the
order the node saw it, whichever way main_service groups them for the input machine."""

from __future__ import annotations

import pytest

from burla.backends.memory import MemoryStore
from burla.core import report_wire, stream_wire, wire
from burla.core.clock import WallClock
from burla.core.inputs import InputStatus
from tests.services.memory_main import memory_service, serving
from tests.services.test_takeover import AUTH, TOKEN, job_body, until_saved

pytestmark = pytest.mark.anyio


def report(*events: wire.Message) -> tuple[list[object], bytes]:
    """The events, each result's byte a letter in turn: A, B, C..."""
    sizes = [s for e in events if isinstance(e, report_wire.ResultsReport) for s in e.sizes]
    payload = b"".join(bytes([65 + n]) * size for n, size in enumerate(sizes))
    return [event.to_json() for event in events], payload


def ok(job: str, worker: str, *indices: int) -> report_wire.ResultsReport:
    return report_wire.ResultsReport(
        job, worker, indices, ("ok",) * len(indices), (1,) * len(indices)
    )


async def test_results_in_a_row_lines_between_and_a_result_told_twice() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    service = memory_service(clock, store)
    job = "job-batched"
    async with serving(service, TOKEN) as client:
        answer = await client.post("/jobs", content=job_body(job, 6), headers=AUTH)
        assert answer.status_code == 200
        receipts = tuple(f"r{n}" for n in range(6))
        await service.report(
            "node-1",
            *report(
                report_wire.ClaimReport(job, "a", (0, 1, 2), receipts[:3]),
                report_wire.ClaimReport(job, "b", (3, 4, 5), receipts[3:]),
                ok(job, "a", 0, 1),
                ok(job, "b", 3),
                report_wire.LineReport(job, 2, "stdout", "between\n"),
                ok(job, "a", 2, 2),  # told twice: recorded once
            ),
        )
        run = service.jobs[job]
        stream = run.events_after(0)
        assert [type(event).__name__ for event, _ in stream] == [
            "JobResult",
            "JobResult",
            "JobResult",
            "JobLine",
            "JobResult",
        ]
        results = [(e.index, data) for e, data in stream if isinstance(e, stream_wire.JobResult)]
        assert results == [(0, b"A"), (1, b"B"), (3, b"C"), (2, b"D")]
        statuses = [record.status for record in run.machine.inputs]
        assert statuses[:4] == [InputStatus.SUCCEEDED] * 4
        assert statuses[4:] == [InputStatus.LEASED] * 2
        assert not run.state.finished

        await service.report(
            "node-1",
            *report(
                ok(job, "b", 4),
                ok(job, "b", 5),
            ),
        )
        await until_saved(store, job, "succeeded")
    assert [record.status for record in run.machine.inputs] == [InputStatus.SUCCEEDED] * 6
    assert sum(isinstance(e, stream_wire.JobResult) for e, _ in run.events_after(0)) == 6
