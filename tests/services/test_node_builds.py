"""A node that runs other burla code than main_service is refused when it reports, and
the reason shows among the cluster's machine errors."""

from __future__ import annotations

import anyio
import httpx
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core.clock import WallClock
from burla.core.models import ClusterConfig, NodeType, StandbyDefinition, StandbyGroup
from burla.release import build_id
from burla.services.cluster_keys import node_secret
from burla.services.main_service.app import create_app
from burla.services.main_service.service import MainService

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
NODE = {"authorization": f"Bearer {node_secret(TOKEN)}"}
NODE_TYPE = NodeType(name="n2", cpus=2, ram_gb=8)


@pytest.fixture
async def service():
    clock = WallClock()
    standby = StandbyDefinition(nodes=(StandbyGroup(node_type=NODE_TYPE, count=1),))
    service = MainService(
        config=ClusterConfig(node_types=(NODE_TYPE,), standby=standby),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token=TOKEN,
    )
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        yield service
        tasks.cancel_scope.cancel()


def booting_node(service: MainService) -> str:
    """The standby node: main_service asked for it as it started."""
    (node_id,) = service.cluster.nodes
    return node_id


async def test_a_node_of_another_build_is_refused_and_failed(service):
    node_id = booting_node(service)
    transport = httpx.ASGITransport(app=create_app(service, TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
        body = {"address": "127.0.0.1:1", "build": "0123456789ab"}
        refused = await client.post(f"/nodes/{node_id}/booted", json=body, headers=NODE)
    assert refused.status_code == 400
    assert refused.json()["error"] == "VersionMismatchError"
    message = refused.json()["message"]
    assert "build 0123456789ab" in message
    assert f"build {build_id()}" in message
    assert "burla deploy" in message
    status = service.nodes.status()
    messages = [error["message"] for error in status["creation_errors"]]
    assert any(message.startswith(f"{node_id}: a node runs") for message in messages)
    assert node_id not in {node["node_id"] for node in status["nodes"]}  # failed, deleted


async def test_a_node_too_old_to_name_its_build_is_refused(service):
    node_id = booting_node(service)
    transport = httpx.ASGITransport(app=create_app(service, TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
        body = {"address": "127.0.0.1:1"}
        refused = await client.post(f"/nodes/{node_id}/booted", json=body, headers=NODE)
    assert refused.status_code == 400
    assert "a burla too old to name its build" in refused.json()["message"]
