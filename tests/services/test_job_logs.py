"""A job's printed lines: bounded, stored in batches, read back after main_service goes."""

from __future__ import annotations

import anyio
import pytest

from burla.backends.memory import MemoryStore
from burla.core import report_wire, wire
from burla.core.clock import WallClock
from burla.services.main_service.job_logs import (
    BATCH_CHARS,
    BATCH_LINES,
    DROPPED,
    HEAD_LINES,
    MAX_LINE_CHARS,
    TAIL_LINES,
    JobLog,
    logs_prefix,
    stored_page,
)
from burla.services.main_service.service import MainService
from tests.services.memory_main import memory_service, serving
from tests.services.test_takeover import AUTH, TOKEN, job_body, until_saved

pytestmark = pytest.mark.anyio


def printed(log: JobLog, lines: range) -> None:
    for n in lines:
        log.add(n % 7, "stdout", f"line {n}\n")


async def test_a_long_log_keeps_its_first_and_last_lines_and_says_how_many_went() -> None:
    store = MemoryStore(WallClock())
    log = JobLog("job-long-log")
    total = HEAD_LINES + 3_000 + TAIL_LINES
    printed(log, range(total))
    await log.flush(store)
    assert not log.unsaved
    for lines, cursor in (
        await stored_page(store, "job-long-log", 0, 10 * total),
        log.page(0, 10 * total),
    ):
        assert cursor == total
        texts = [line["text"] for line in lines]
        assert texts[:HEAD_LINES] == [f"line {n}\n" for n in range(HEAD_LINES)]
        notice = lines[HEAD_LINES]
        assert notice["stream"] == DROPPED
        assert notice["input"] is None
        assert "3000 lines were not kept" in notice["text"]
        assert texts[HEAD_LINES + 1 :] == [f"line {n}\n" for n in range(total - TAIL_LINES, total)]
    docs = await store.list(logs_prefix("job-long-log"), limit=1000)
    assert len(docs) == HEAD_LINES // BATCH_LINES + 1  # the head in batches, one tail
    assert all(len(doc.data["lines"]) <= BATCH_LINES for doc in docs[:-1])


async def test_pages_go_on_where_the_last_one_ended() -> None:
    store = MemoryStore(WallClock())
    log = JobLog("job-paged")
    printed(log, range(1_234))
    await log.flush(store)
    seen: list[str] = []
    cursor = 0
    while True:
        lines, cursor = await stored_page(store, "job-paged", cursor, 100)
        if not lines:
            break
        seen += [line["text"] for line in lines]
    assert seen == [f"line {n}\n" for n in range(1_234)]
    assert log.page(1_234, 100) == ([], 1_234)


async def test_big_lines_are_cut_and_batches_stay_small() -> None:
    store = MemoryStore(WallClock())
    log = JobLog("job-big-lines")
    for n in range(40):
        log.add(n, "stderr", "x" * (MAX_LINE_CHARS * 2))
    await log.flush(store)
    lines, _ = await stored_page(store, "job-big-lines", 0, 100)
    assert len(lines) == 40
    assert all(len(line["text"]) < MAX_LINE_CHARS + 100 for line in lines)
    assert f"({MAX_LINE_CHARS} more characters not kept)" in lines[0]["text"]
    for doc in await store.list(logs_prefix("job-big-lines")):
        assert sum(len(text) for _, _, text in doc.data["lines"]) <= BATCH_CHARS + MAX_LINE_CHARS


@pytest.mark.parametrize("before", [150, HEAD_LINES + 10, HEAD_LINES + TAIL_LINES + 500])
async def test_a_log_taken_over_goes_on_after_the_stored_lines(before: int) -> None:
    store = MemoryStore(WallClock())
    first = JobLog("job-taken-over")
    printed(first, range(before))
    await first.flush(store)
    second = await JobLog.resume(store, "job-taken-over")
    assert second.count == before
    printed(second, range(before, before + 5))
    assert [line["text"] for line in second.page(before, 100)[0]] == [
        f"line {n}\n" for n in range(before, before + 5)
    ]
    await second.flush(store)
    lines, cursor = await stored_page(store, "job-taken-over", 0, 10 * before)
    assert cursor == before + 5
    assert lines[-5:] == second.page(before, 100)[0]
    kept = [line for line in lines if line["stream"] != DROPPED]
    assert len(kept) == min(before + 5, HEAD_LINES + TAIL_LINES)


def reports(job_id: str, n_inputs: int) -> tuple[list[object], bytes]:
    """What a node reports of a job whose every input prints a line and succeeds."""
    receipts = tuple(f"r{n}" for n in range(n_inputs))
    events: list[wire.Message] = [
        report_wire.ClaimReport(job_id, "w", tuple(range(n_inputs)), receipts)
    ]
    for n in range(n_inputs):
        events.append(report_wire.LineReport(job_id, n, "stdout", f"hello from {n}\n"))
        events.append(report_wire.ResultsReport(job_id, "w", (n,), ("ok",), (1,)))
    return [event.to_json() for event in events], b"x" * n_inputs


async def logs_of(client: object, job_id: str) -> dict[str, object]:
    answer = await client.get(f"/jobs/{job_id}/logs", headers=AUTH)  # type: ignore[attr-defined]
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def test_a_finished_jobs_lines_are_read_from_the_store_after_a_restart() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    first: MainService = memory_service(clock, store)
    async with serving(first, TOKEN) as client:
        answer = await client.post("/jobs", content=job_body("job-printed-1", 3), headers=AUTH)
        assert answer.status_code == 200
        await first.report("node-1", *reports("job-printed-1", 3))
        await until_saved(store, "job-printed-1", "succeeded")
    async with serving(memory_service(clock, store), TOKEN) as client:
        page = await logs_of(client, "job-printed-1")
    assert page["state"] == "succeeded"
    assert page["lines"] == [
        {"input": n, "stream": "stdout", "text": f"hello from {n}\n"} for n in range(3)
    ]


async def test_a_running_jobs_lines_reach_the_store_within_seconds() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    service = memory_service(clock, store)
    async with serving(service, TOKEN) as client:
        answer = await client.post("/jobs", content=job_body("job-printing", 3), headers=AUTH)
        assert answer.status_code == 200
        events, _ = reports("job-printing", 3)
        await service.report("node-1", events[:2], b"")  # a claim and one line
        with anyio.fail_after(10):
            while not await store.list(logs_prefix("job-printing")):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        lines, _ = await stored_page(store, "job-printing", 0, 10)
    assert lines == [{"input": 0, "stream": "stdout", "text": "hello from 0\n"}]


async def test_lines_of_a_job_taken_over_read_on_across_the_takeover() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    first = memory_service(clock, store)
    events, _ = reports("job-followed", 3)
    async with serving(first, TOKEN) as client:
        answer = await client.post("/jobs", content=job_body("job-followed", 3), headers=AUTH)
        assert answer.status_code == 200
        await first.report("node-1", [events[0], events[1], events[3]], b"")  # lines 0, 1
        await until_saved(store, "job-followed", "running")
        with anyio.fail_after(10):
            while len((await stored_page(store, "job-followed", 0, 10))[0]) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.05)
    second = memory_service(clock, store)
    async with serving(second, TOKEN) as client:
        assert "job-followed" in second.jobs
        line_2 = report_wire.LineReport("job-followed", 2, "stdout", "hello from 2\n").to_json()
        await second.report("node-2", [line_2], b"")
        page = await logs_of(client, "job-followed")
        assert [line["text"] for line in page["lines"]] == ["hello from 0\n", "hello from 1\n"]
        answer = await client.get(
            "/jobs/job-followed/logs", params={"after": page["next"]}, headers=AUTH
        )
        assert [line["text"] for line in answer.json()["lines"]] == ["hello from 2\n"]
        assert answer.json()["state"] == "running"
