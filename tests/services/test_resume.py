"""A job that resumes another, on main_service: checked against the job it resumes,
queued with only the inputs that have no successful result there, holding copies of
the results it reuses (so it stands alone once that job is gone), and refused with
what to do when it cannot be resumed."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.client.uploads import job_body
from burla.core import stream_wire, wire
from burla.core.clock import WallClock
from burla.core.inputs import InputMachine
from burla.core.models import JobSpec, JobState
from burla.core.resume import input_digest
from burla.services.input_pages import input_pages
from burla.services.main_service.jobs import JobRun, run_from_record
from burla.services.main_service.retention import forget_oldest
from burla.services.main_service.service import MainService
from burla.services.result_pages import PAGE_BYTES, stored_results, write_results
from burla.services.store_keys import IN_BLOB, INLINE, job_key, queue_name
from tests.services.memory_main import memory_service, serving
from tests.services.test_takeover import until_saved

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
AUTH = {"authorization": f"Bearer {TOKEN}"}
OLD = "job-old-0000000001"
INPUTS = [b"in-0", b"in-1", b"in-2", b"in-3", b"in-4"]
BIG_KEY = f"uploads/admin/{OLD}/4"
BIG_RESULT = b"r" * (PAGE_BYTES + 1)


async def finished_job(service: MainService, state: str = "failed") -> None:
    """Job OLD as a job that ended leaves it: inputs 0 and 3 succeeded (3's result is big,
    in the blob store), 1 failed, 2 and 4 never ran; input 4 was big (uploaded)."""
    spec = JobSpec(job_id=OLD, n_inputs=5, func_ram=1).model_dump(mode="json")
    items = [(str(n), INLINE + data) for n, data in enumerate(INPUTS[:4])]
    items.append(("4", IN_BLOB + BIG_KEY.encode()))
    await service.blobs.put(BIG_KEY, INPUTS[4])
    record: dict[str, Any] = {
        "spec": spec,
        "state": state,
        "owner": "admin",
        "ended_at": 1.0,
        "result_bytes": 10,
        "kept": {
            "input_bytes": 20,
            "function": b"old function",
            "function_key": None,
            "blob_prefixes": [f"uploads/admin/{OLD}/"],
        },
    }
    pages = input_pages(OLD, items, {4: input_digest(INPUTS[4])})
    await service.store.put_many({job_key(OLD): record, **pages})
    written = [(0, "ok", b"result-0", "d0"), (1, "raised", b"error", "failed")]
    written.append((3, "ok", BIG_RESULT, "d3"))
    for result in written:  # as nodes and main_service write them: apart
        await write_results(service.store, service.blobs, OLD, [result])


def resuming(
    job_id: str, inputs: list[bytes], *, failed_only: bool = False, big: bytes = INPUTS[4]
) -> bytes:
    """A job that resumes OLD, its last input uploaded (with its digest)."""
    key = f"uploads/admin/{job_id}/4"
    spec = {"n_inputs": len(inputs), "func_ram": 1, "resumes": OLD}
    if failed_only:
        spec["resume_failed_only"] = True
    head = {"job_id": job_id, "spec": spec}
    payloads = [*inputs[:-1], b""]
    return job_body(
        head, b"fixed function", payloads, {len(inputs) - 1: key}, {4: input_digest(big)}
    )


async def events(client: Any, job_id: str) -> list[tuple[stream_wire.JobEvent, bytes]]:
    answer = await client.get(
        f"/jobs/{job_id}/events", params={"after": 0, "wait": 0}, headers=AUTH
    )
    _, found = stream_wire.read_stream(answer.content)
    return list(found)


async def queued(store: MemoryStore, job_id: str) -> list[str]:
    claims = await store.claim(queue_name(job_id), limit=100, lease_s=60)
    return sorted(claim.item_id for claim in claims)


async def test_only_inputs_without_a_success_are_queued_and_the_rest_are_copied() -> None:
    clock = WallClock()
    blobs = MemoryBlobStore(clock)
    service = memory_service(clock, blobs=blobs)
    await finished_job(service)
    new = "job-new-0000000001"
    await blobs.put(f"uploads/admin/{new}/4", INPUTS[4])
    async with serving(service, TOKEN) as client:
        answer = await client.post("/jobs", content=resuming(new, INPUTS), headers=AUTH)
        assert answer.status_code == 200, answer.text
        told = {event.index: payload for event, payload in await events(client, new)}
        assert told == {0: b"result-0", 3: BIG_RESULT}, "the reused results reach the client"
        assert await queued(service.store, new) == ["1", "2", "4"]
        job = (await client.get(f"/jobs/{new}", headers=AUTH)).json()
        assert job["spec"]["resumes"] == OLD
        assert job["inputs"] == {"succeeded": 2, "queued": 3}
        run = service.jobs[new]
        assert run.result_bytes == len(b"result-0") + len(BIG_RESULT), "copies count as kept"
        await until_saved(service.store, new, "running")
        # The new job holds its own copies: they outlive the job it resumed.
        await forget_oldest(service.store, blobs, 0, running={new})
        assert await service.store.get(job_key(OLD)) is None
        copies = await stored_results(service.store, blobs, new)
        assert copies == {0: ("ok", b"result-0"), 3: ("ok", BIG_RESULT)}
        await client.post(f"/jobs/{new}/cancel", headers=AUTH)


async def test_failed_only_runs_the_failed_inputs_and_skips_those_never_run() -> None:
    clock = WallClock()
    service = memory_service(clock)
    await finished_job(service)
    new = "job-new-0000000002"
    async with serving(service, TOKEN) as client:
        body = resuming(new, INPUTS, failed_only=True)
        assert (await client.post("/jobs", content=body, headers=AUTH)).status_code == 200
        assert await queued(service.store, new) == ["1"]
        assert service.jobs[new].counts()["never_run"] == 2
        await until_saved(service.store, new, "running")
        # A main_service that takes the job over skips the same inputs.
        stored = await service.store.get(job_key(new))
        assert stored is not None
        taken = run_from_record(stored.data, None, clock, validate=True)
        assert [n for n, r in enumerate(taken.machine.inputs) if r.status.finished] == [2, 4]
        await client.post(f"/jobs/{new}/cancel", headers=AUTH)


async def test_a_job_whose_every_input_succeeded_ends_at_once() -> None:
    clock = WallClock()
    service = memory_service(clock)
    await finished_job(service)
    # Input 1 ran again (its lease ran out) and this page comes before its failure's:
    # readers take the first page of an input, so it succeeded.
    more = [(1, "ok", b"result-1", "a1"), (2, "ok", b"result-2", "d2"), (4, "ok", b"4", "d4")]
    await write_results(service.store, service.blobs, OLD, more)
    new = "job-new-0000000003"
    async with serving(service, TOKEN) as client:
        answer = await client.post(
            "/jobs", content=resuming(new, INPUTS), params={"wait": 5}, headers=AUTH
        )
        head, found = stream_wire.read_stream(answer.content)
        results = {event.index for event, _ in found if isinstance(event, stream_wire.JobResult)}
        assert (head.state, results) == ("succeeded", {0, 1, 2, 3, 4})
        assert await queued(service.store, new) == []


@pytest.mark.parametrize(
    ("inputs", "big", "message"),
    [
        (INPUTS[:4], INPUTS[4], f"job {OLD} has 5 inputs and this call 4"),
        ([*INPUTS[:2], b"other", *INPUTS[3:]], INPUTS[4], "input 2 is not input 2 of job"),
        (INPUTS, b"another big input", "input 4 is not input 4 of job"),
    ],
)
async def test_other_inputs_are_refused_saying_which_differs(
    inputs: list[bytes], big: bytes, message: str
) -> None:
    clock = WallClock()
    service = memory_service(clock)
    await finished_job(service)
    async with serving(service, TOKEN) as client:
        body = resuming("job-new-0000000004", inputs, big=big)
        answer = await client.post("/jobs", content=body, headers=AUTH)
        assert answer.status_code == 400
        assert answer.json()["error"] == "ResumeMismatchError"
        assert message in answer.json()["message"]
        assert "job-new-0000000004" not in service.jobs


async def test_a_running_unknown_or_removed_job_cannot_be_resumed() -> None:
    clock = WallClock()
    service = memory_service(clock)
    async with serving(service, TOKEN) as client:

        async def refusal(job_id: str) -> tuple[str, str]:
            answer = await client.post("/jobs", content=resuming(job_id, INPUTS), headers=AUTH)
            assert answer.status_code == 400, answer.text
            return answer.json()["error"], answer.json()["message"]

        error, message = await refusal("job-new-0000000005")
        assert error == "ResumeError"
        assert f"there is no job {OLD} to resume" in message
        await finished_job(service, state="running")
        error, message = await refusal("job-new-0000000006")
        assert error == "ResumeError"
        assert message.startswith(f"job {OLD} is still running")
        assert f"burla jobs cancel {OLD}" in message
        await finished_job(service)
        await forget_oldest(service.store, service.blobs, 0, running=set())
        error, message = await refusal("job-new-0000000007")
        assert error == "ResumeError"
        assert message.startswith(f"there is no job {OLD} to resume")
        await finished_job(service)
        record = await service.store.get(job_key(OLD))
        assert record is not None
        await service.store.put(job_key(OLD), {**record.data, "removed": True})
        error, message = await refusal("job-new-0000000008")
        assert message.startswith(f"job {OLD} no longer keeps its inputs and results")


async def test_another_users_job_is_not_found() -> None:
    clock = WallClock()
    service = memory_service(clock)
    await finished_job(service)
    record = await service.store.get(job_key(OLD))
    assert record is not None
    await service.store.put(job_key(OLD), {**record.data, "owner": "alice"})
    async with serving(service, TOKEN) as client:
        assert (await client.post("/users", json={"name": "bob"}, headers=AUTH)).is_success
        token = (await client.post("/tokens", json={"user": "bob"}, headers=AUTH)).json()["token"]
        bob = {"authorization": f"Bearer {token}"}
        head = {"job_id": "job-new-0000000009", "spec": {"n_inputs": 1, "resumes": OLD}}
        answer = await client.post("/jobs", content=job_body(head, b"f", [b"x"], {}), headers=bob)
        assert answer.status_code == 400
        assert f"there is no job {OLD} to resume" in answer.json()["message"]


async def test_kept_inputs_are_served_a_page_at_a_time() -> None:
    clock = WallClock()
    service = memory_service(clock)
    await finished_job(service)
    async with serving(service, TOKEN) as client:
        answer = await client.get(f"/jobs/{OLD}/inputs", params={"after": -1}, headers=AUTH)
        [(header, payload)] = list(wire.decode_all(answer.content))
        assert header["next"] is None
        rows = list(
            wire.results_in_row(header["indices"], header["kinds"], header["sizes"], payload)
        )
        assert rows == [
            *[(n, "inline", data) for n, data in enumerate(INPUTS[:4])],
            (4, "blob", BIG_KEY.encode()),
        ]
        after = await client.get(f"/jobs/{OLD}/inputs", params={"after": 4}, headers=AUTH)
        [(header, _)] = list(wire.decode_all(after.content))
        assert header == {"indices": [], "kinds": [], "sizes": [], "next": None}


async def test_a_job_resumed_the_moment_it_ended_waits_for_its_record() -> None:
    """Its client hears of the end before main_service writes the record that says what
    it keeps: a resume sent at once waits for that record rather than being refused."""
    clock = WallClock()
    blobs = MemoryBlobStore(clock)
    service = memory_service(clock, blobs=blobs)
    await finished_job(service)
    ended = await service.store.get(job_key(OLD))
    assert ended is not None
    first = {key: value for key, value in ended.data.items() if key != "kept"}
    await service.store.put(job_key(OLD), {**first, "state": "running"})
    spec = JobSpec.model_validate(ended.data["spec"])
    held = JobRun(spec, b"old function", None, InputMachine(spec.n_inputs), "admin")
    held.state = JobState.FAILED
    service.jobs[OLD] = held
    new = "job-new-0000000003"
    await blobs.put(f"uploads/admin/{new}/4", INPUTS[4])

    async def write_the_ended_record() -> None:
        await anyio.sleep(0.2)
        await service.store.put(job_key(OLD), ended.data)
        held.ended_saved.set()
        held.nodes_reset.set()  # it ran on no node

    async with serving(service, TOKEN) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(write_the_ended_record)
        answer = await client.post("/jobs", content=resuming(new, INPUTS), headers=AUTH)
        assert answer.status_code == 200, answer.text
        told = {event.index: payload for event, payload in await events(client, new)}
        assert told == {0: b"result-0", 3: BIG_RESULT}
        await client.post(f"/jobs/{new}/cancel", headers=AUTH)
