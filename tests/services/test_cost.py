"""main_service and what jobs cost: a max_cost refused at submission before anything is
written, and each user's total seen by that user alone (the admin: everyone's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core import wire
from burla.core.clock import WallClock
from burla.core.cost import NodePrice
from burla.core.models import ClusterConfig, NodeType
from burla.services.main_service.app import create_app
from burla.services.main_service.service import MainService
from burla.services.store_keys import JOBS_PREFIX

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
PRICED = NodeType(name="priced", cpus=2, ram_gb=8, price_per_hour=36.0)
UNPRICED = NodeType(name="z9-unknown-2", cpus=2, ram_gb=8)


def no_list_price(node_type: NodeType) -> NodePrice:
    return NodePrice(None, f"no list price for {node_type.name}")


@dataclass
class Cluster:
    http: httpx.AsyncClient
    service: MainService

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.post(path, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)


@pytest.fixture
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    clock = WallClock()
    service = MainService(
        config=ClusterConfig(node_types=(request.param,)),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token=TOKEN,
        list_price=no_list_price,
    )
    transport = httpx.ASGITransport(app=create_app(service, TOKEN))
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        async with httpx.AsyncClient(transport=transport, base_url="http://main") as http:
            yield Cluster(http, service)
        tasks.cancel_scope.cancel()


def job(job_id: str, n_inputs: int, **spec: Any) -> bytes:
    header = {"job_id": job_id, "spec": {"n_inputs": n_inputs, "func_ram": 1, **spec}}
    return wire.encode_many([(header, b"function"), *(({"i": n}, b"in") for n in range(n_inputs))])


async def jobs_stored(cluster: Cluster) -> list[str]:
    return [doc.key for doc in await cluster.service.store.list(JOBS_PREFIX)]


@pytest.mark.parametrize("cluster", [PRICED], indirect=True)
async def test_a_job_over_its_max_cost_by_its_estimate_is_refused_and_never_written(cluster):
    # 100 inputs of 36 s, 2 at once: 1,800 node-seconds at a cent a second, $18 at least.
    over = job("job-over-budget", 100, max_cost=10, seconds_per_input=36)
    answer = await cluster.post("/jobs", content=over, headers=ADMIN)
    assert answer.status_code == 400
    assert answer.json()["error"] == "EstimateOverBudgetError"
    assert "would cost at least $18.0000, over its max_cost=$10" in answer.json()["message"]
    assert "price_per_hour of node type priced" in answer.json()["message"]
    assert await jobs_stored(cluster) == []
    within = job("job-within-budget", 100, max_cost=20, seconds_per_input=36)
    assert (await cluster.post("/jobs", content=within, headers=ADMIN)).status_code == 200
    assert await jobs_stored(cluster) == [f"{JOBS_PREFIX}job-within-budget"]


@pytest.mark.parametrize("cluster", [UNPRICED], indirect=True)
async def test_a_max_cost_on_a_node_type_without_a_price_is_refused(cluster):
    answer = await cluster.post("/jobs", content=job("job-no-price", 1, max_cost=1), headers=ADMIN)
    assert answer.status_code == 400
    assert answer.json()["error"] == "InvalidRequestError"
    assert "has no price (no list price for z9-unknown-2)" in answer.json()["message"]
    assert "price_per_hour" in answer.json()["message"]
    # Without a cap the job runs: its node time counts, its cost is not known.
    assert (await cluster.post("/jobs", content=job("job-free", 1), headers=ADMIN)).is_success
    shown = (await cluster.get("/jobs/job-free", headers=ADMIN)).json()
    assert shown["cost"] == {"node_seconds": 0.0, "usd": 0.0, "basis": ""}


@pytest.mark.parametrize("cluster", [PRICED], indirect=True)
async def test_each_user_sees_their_own_total_and_the_admin_everyones(cluster):
    headers = {}
    for name in ("alice", "bob"):
        assert (await cluster.post("/users", json={"name": name}, headers=ADMIN)).is_success
        made = await cluster.post("/tokens", json={"user": name}, headers=ADMIN)
        headers[name] = {"authorization": f"Bearer {made.json()['token']}"}
    for n, name in enumerate(["alice", "alice", "bob"]):
        body = job(f"job-of-{name}-{n}", 1)
        assert (await cluster.post("/jobs", content=body, headers=headers[name])).is_success
    alice = (await cluster.get("/costs", headers=headers["alice"])).json()["users"]
    assert [(user["user"], user["jobs"]) for user in alice] == [("alice", 2)]
    everyone = (await cluster.get("/costs", headers=ADMIN)).json()["users"]
    assert [(user["user"], user["jobs"]) for user in everyone] == [("alice", 2), ("bob", 1)]
