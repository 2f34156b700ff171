"""POST /jobs and GET /jobs/{id}/events, served in front of the framework: what they answer
to a good job, and the clear 4xx they give to bad requests (the service keeps serving)."""

from __future__ import annotations

import pytest

from burla.core import wire
from burla.core.clock import WallClock
from tests.services.memory_main import memory_service, serving

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
AUTH = {"authorization": f"Bearer {TOKEN}"}
SPEC = {"n_inputs": 1, "func_cpu": 1, "func_ram": 1}


@pytest.fixture
async def client():
    async with serving(memory_service(WallClock()), TOKEN) as client:
        yield client


def job_body(spec=SPEC, job_id="job-0123456789", inputs=(b"input",)):
    frames = [({"job_id": job_id, "spec": spec}, b"function")]
    frames += [({"i": n}, data) for n, data in enumerate(inputs)]
    return wire.encode_many(frames)


async def test_a_job_is_started_and_its_events_read(client):
    answer = await client.post("/jobs", content=job_body(), headers=AUTH)
    assert answer.status_code == 200
    head, _ = wire.read_stream(answer.content)
    assert (head.job_id, head.state, head.next, head.error) == (
        "job-0123456789",
        "running",
        0,
        None,
    )
    events = await client.get("/jobs/job-0123456789/events?after=0&wait=0", headers=AUTH)
    assert events.status_code == 200
    assert wire.read_stream(events.content)[0] == head
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
