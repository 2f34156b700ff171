"""main_service keeps every node it loses with the cause: a preempted spot VM apart from a
machine that failed and a node that stopped answering."""

from __future__ import annotations

import anyio
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core.clock import WallClock
from burla.core.models import (
    ClusterConfig,
    ContainerSpec,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.services.main_service.node_losses import LossCause, NodeLoss, NodeLosses
from burla.services.main_service.service import MainService

SPOT = NodeType(name="n2-standard-8", cpus=8, ram_gb=32, spot=True)


async def until(condition, timeout_s: float = 10.0) -> None:
    with anyio.fail_after(timeout_s):
        while not condition():  # noqa: ASYNC110 - the cluster's state has no event
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_a_preempted_spot_node_is_lost_as_preempted_and_a_crashed_one_as_failed() -> None:
    clock = WallClock()
    config = ClusterConfig(
        standby=StandbyDefinition(
            nodes=(StandbyGroup(node_type=SPOT, count=2),),
            containers=(ContainerSpec(image="default"),),
        )
    )
    compute = MemoryComputeProvider(clock, boot_s=3600)  # they stay booting: no node_service
    service = MainService(
        config=config,
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=compute,
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        await until(lambda: len(service.cluster.nodes) == 2)
        first, second = sorted(service.cluster.nodes)
        with anyio.fail_after(10):
            while len(await compute.list()) < 2:  # noqa: ASYNC110 - machines have no event
                await anyio.sleep(0.02)
        compute.preempt(first)
        compute.fail(second)
        await until(lambda: sum(service.nodes.losses.counts.values()) == 2)
        status = service.cluster_status()
        await until(lambda: len(service.cluster.nodes) == 2 and first not in service.cluster.nodes)
        tasks.cancel_scope.cancel()
    losses = status["node_losses"]
    causes = {loss["node_id"]: loss["cause"] for loss in losses["recent"]}
    assert causes == {first: "preempted", second: "machine failed"}
    assert losses["counts"] == {
        "preempted": 1,
        "machine failed": 1,
        "machine gone": 0,
        "connection lost": 0,
    }
    assert {loss["node_type"] for loss in losses["recent"]} == {"n2-standard-8"}
    assert [node["spot"] for node in status["nodes"]] == [True, True]


def test_a_node_lost_by_its_connection_and_then_seen_preempted_counts_as_preempted() -> None:
    losses = NodeLosses()
    losses.lost(NodeLoss(1.0, "node-a", "n2-standard-8", "job-1", LossCause.UNREACHABLE))
    losses.lost(NodeLoss(2.0, "node-b", "n2-standard-8", None, LossCause.MACHINE_FAILED))
    losses.preempted("node-a")
    losses.preempted("node-a")  # seen again at the next look: still one
    losses.preempted("node-never-lost")
    counts = losses.as_json()["counts"]
    assert (counts["preempted"], counts["connection lost"], counts["machine failed"]) == (1, 0, 1)
    assert [loss.cause for loss in losses.recent] == [
        LossCause.PREEMPTED,
        LossCause.MACHINE_FAILED,
    ]
