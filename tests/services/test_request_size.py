"""main_service refuses a request over its size limit with 413 and writes nothing; requests
under it, before and after, are served as usual."""

from __future__ import annotations

import anyio
import httpx
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core import wire
from burla.core.clock import WallClock
from burla.core.limits import RequestLimits
from burla.core.models import ClusterConfig, NodeType
from burla.services.main_service.app import create_app
from burla.services.main_service.service import MainService

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
AUTH = {"authorization": f"Bearer {TOKEN}"}
LIMITS = RequestLimits(job_request=4000, request=200)


@pytest.fixture
async def service():
    clock = WallClock()
    service = MainService(
        config=ClusterConfig(node_types=(NodeType(name="n2", cpus=2, ram_gb=8),)),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        yield service
        tasks.cancel_scope.cancel()


@pytest.fixture
async def client(service):
    transport = httpx.ASGITransport(app=create_app(service, TOKEN, LIMITS))
    async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
        yield client


def job_body(job_id: str, input_size: int) -> bytes:
    spec = {"n_inputs": 1, "func_cpu": 1, "func_ram": 1}
    return wire.encode_many(
        [({"job_id": job_id, "spec": spec}, b"f"), ({"i": 0}, b"x" * input_size)]
    )


async def chunks(data: bytes):
    for start in range(0, len(data), 1000):
        yield data[start : start + 1000]


async def test_a_job_over_the_limit_is_refused_and_nothing_is_written(client, service):
    answer = await client.post("/jobs", content=job_body("job-big", 5000), headers=AUTH)
    assert answer.status_code == 413
    body = answer.json()
    assert body["error"] == "PayloadTooLargeError"
    assert body["limit"] == 4000
    assert "BURLA_MAX_JOB_REQUEST_MB" in body["message"]
    assert "nothing was written" in body["message"]
    assert "job-big" not in service.jobs
    assert await service.store.get("jobs/job-big") is None
    ok = await client.post("/jobs", content=job_body("job-small", 100), headers=AUTH)
    assert ok.status_code == 200


async def test_a_body_sent_in_chunks_is_counted_as_it_comes(client, service):
    answer = await client.post("/jobs", content=chunks(job_body("job-chunked", 9000)), headers=AUTH)
    assert answer.status_code == 413
    assert answer.json()["error"] == "PayloadTooLargeError"
    assert "job-chunked" not in service.jobs
    standby = await client.put("/standby", content=chunks(b" " * 5000), headers=AUTH)
    assert standby.status_code == 413


async def test_every_other_route_has_the_smaller_limit(client, service):
    before = service.cluster.config
    for method, path in [
        ("PUT", "/standby"),
        ("POST", "/uploads"),
        ("POST", "/nodes/n-1/booted"),
        ("POST", "/dashboard/login"),
        ("POST", "/jobs/job-x/cancel"),
    ]:
        answer = await client.request(method, path, content=b"{" + b" " * 300 + b"}", headers=AUTH)
        assert answer.status_code == 413, (method, path, answer.text)
        assert "BURLA_MAX_REQUEST_KB" in answer.json()["message"]
    assert service.cluster.config == before
    answer = await client.post("/uploads", json={"count": 1}, headers=AUTH)
    assert answer.status_code == 200
