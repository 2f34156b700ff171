"""POST /jobs and GET /jobs/{id}/events, served in front of the framework: what they answer
to a good job, and the clear 4xx they give to bad requests (the service keeps serving)."""

from __future__ import annotations

import pytest

from burla.client.uploads import job_body as job_body_of_client
from burla.core import stream_wire, wire
from burla.core.clock import WallClock
from burla.services.store_keys import IN_BLOB, INLINE, queue_name
from tests.services.memory_main import memory_service, serving

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SPEC = {"n_inputs": 1, "func_cpu": 1, "func_ram": 1}
INPUTS = [b"a", b"", b"uploaded", b"ccc", b"dd"]


@pytest.fixture
async def client():
    async with serving(memory_service(WallClock()), TOKEN) as client:
        yield client


def job_body(spec=SPEC, job_id="job-0123456789", inputs=(b"input",)):
    frames = [({"job_id": job_id, "spec": spec}, b"function")]
    frames += [({"i": n}, data) for n, data in enumerate(inputs)]
    return wire.encode_many(frames)


def numbered(indices, spec):
    frames = [({"job_id": "job-0123456789", "spec": spec}, b"function")]
    return wire.encode_many(frames + [({"i": n}, b"x") for n in indices])


def run_body(run, data, spec=SPEC):
    return wire.encode_many([({"job_id": "job-0123456789", "spec": spec}, b"f"), (run, data)])


async def test_inputs_in_runs_and_uploaded_ones_between_are_queued_each_as_sent():
    service = memory_service(WallClock())
    spec = {**SPEC, "n_inputs": 5}
    keys = {2: "uploads/admin/job-0123456789/2"}
    body = job_body_of_client({"job_id": "job-0123456789", "spec": spec}, b"f", INPUTS, keys)
    async with serving(service, TOKEN) as client:
        answer = await client.post("/jobs", content=body, headers=AUTH)
        assert answer.status_code == 200, answer.text
        queued = await service.store.claim(queue_name("job-0123456789"), limit=10, lease_s=60)
    assert {claim.item_id: claim.data for claim in queued} == {
        "0": INLINE + b"a",
        "1": INLINE + b"",
        "2": IN_BLOB + keys[2].encode(),
        "3": INLINE + b"ccc",
        "4": INLINE + b"dd",
    }


async def test_a_job_is_started_and_its_events_read(client):
    answer = await client.post("/jobs", content=job_body(), headers=AUTH)
    assert answer.status_code == 200
    head, _ = stream_wire.read_stream(answer.content)
    assert (head.job_id, head.state, head.next, head.error) == (
        "job-0123456789",
        "running",
        0,
        None,
    )
    events = await client.get("/jobs/job-0123456789/events?after=0&wait=0", headers=AUTH)
    assert events.status_code == 200
    assert stream_wire.read_stream(events.content)[0] == head
    again = await client.post("/jobs", content=job_body(), headers=AUTH)
    assert again.status_code == 409
    assert "already" in again.json()["message"]


async def test_the_job_routes_need_the_token(client):
    assert (await client.post("/jobs", content=job_body())).status_code == 401
    assert (await client.get("/jobs/job-0123456789/events")).status_code == 401


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "starts with the job's frame"),
        (b"\x00\x01garbage", "ends inside a frame"),
        (wire.encode_many([({"job_id": "job-0123456789"}, b"f")]), "holds its spec"),
        (wire.encode_many([({"spec": SPEC}, b"f"), ({"x": 1}, b"")]), "not a job's frames"),
        (job_body(spec={**SPEC, "func_cpu": "many"}), "spec is not valid"),
        (job_body(spec={**SPEC, "n_inputs": 2}), "has 2 inputs but 1 came"),
        (job_body(job_id="BAD ID"), "is not 8-64"),
        (numbered([0, 0], {**SPEC, "n_inputs": 2}), "numbered 0 to 1, each once"),
        (numbered([0, 2], {**SPEC, "n_inputs": 2}), "numbered 0 to 1, each once"),
        (numbered([-1], SPEC), "numbered 0 to 0, each once"),
        (run_body({"from": 0, "sizes": [1, 2]}, b"xy"), "says 3 bytes but has 2"),
        (run_body({"from": 0, "sizes": [1, -1]}, b""), "a whole number"),
    ],
)
async def test_a_bad_job_gets_a_clear_400_and_the_service_goes_on(client, body, says):
    answer = await client.post("/jobs", content=body, headers=AUTH)
    assert answer.status_code == 400
    assert says in answer.json()["message"]
    assert (await client.post("/jobs", content=job_body(), headers=AUTH)).status_code == 200


async def test_bad_event_requests_get_clear_answers(client):
    unknown = await client.get("/jobs/job-9999999999/events", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "NotFoundError"
    await client.post("/jobs", content=job_body(), headers=AUTH)
    bad = await client.get("/jobs/job-0123456789/events?wait=soon", headers=AUTH)
    assert bad.status_code == 400
    assert "wait='soon' is not a number" in bad.json()["message"]
    bad_wait = await client.post(
        "/jobs?wait=x", content=job_body(job_id="job-x123456789"), headers=AUTH
    )
    assert bad_wait.status_code == 400
