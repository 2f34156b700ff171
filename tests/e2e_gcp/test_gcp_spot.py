"""A cloud cluster of spot VMs on this machine: its VMs are created as Compute Engine
requires of spot VMs, and a node preempted in the middle of a job is a lost node: its
inputs run again on another node, the job finishes whole, and the cluster says the node
was preempted."""

from __future__ import annotations

import os
import time

import pytest

from burla import remote_parallel_map
from burla.client.map import job_results
from tests.e2e_gcp.conftest import PROJECT, ZONE, GcpCluster

pytestmark = pytest.mark.integration

N_INPUTS = 60


def slow_double(x: int) -> tuple[int, str]:
    """Twice x, and the VM that ran it (the fake Compute API gives each VM its own home)."""
    time.sleep(0.25)
    return 2 * x, os.environ["HOME"]


def test_the_cluster_creates_its_nodes_as_spot_vms(gcp_spot: GcpCluster) -> None:
    status = gcp_spot.wait_for_standby()
    [node] = status["nodes"]
    assert node["spot"] is True
    assert status["standby"]["nodes"][0]["node_type"]["spot"] is True
    name = f"{gcp_spot.cluster}-{node['node_id']}"
    [body] = [body for body in gcp_spot.api.inserted if body["name"] == name]
    assert body["scheduling"] == {
        "provisioningModel": "SPOT",
        "instanceTerminationAction": "STOP",
        "onHostMaintenance": "TERMINATE",
        "automaticRestart": False,
    }


def test_a_node_preempted_mid_job_loses_no_input_and_is_shown_preempted(
    gcp_spot: GcpCluster,
) -> None:
    before = gcp_spot.wait_for_standby()
    node = before["nodes"][0]["node_id"]
    vm = f"{gcp_spot.cluster}-{node}"
    job_id = remote_parallel_map(
        slow_double, range(N_INPUTS), backend="gcp", spinner=False, detach=True
    )
    deadline = time.monotonic() + 120
    while not gcp_spot.get(f"/jobs/{job_id}")["counts"]["succeeded"]:
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)

    gcp_spot.api.preempt(PROJECT, ZONE, vm)  # returns once the VM is TERMINATED

    deadline = time.monotonic() + 180
    while (job := gcp_spot.get(f"/jobs/{job_id}"))["state"] == "running":
        assert time.monotonic() < deadline, f"the job did not finish: {gcp_spot.status()}"
        time.sleep(0.1)
    assert job["state"] == "succeeded", job
    results = job_results(job_id, backend="gcp")
    assert [doubled for doubled, _ in results] == [2 * x for x in range(N_INPUTS)]
    homes = {home for _, home in results}
    assert len(homes) == 2, "the inputs the preempted node had not finished ran on another"

    losses = gcp_spot.status()["node_losses"]
    [loss] = [loss for loss in losses["recent"] if loss["node_id"] == node]
    assert (loss["cause"], loss["job_id"], loss["node_type"]) == (
        "preempted",
        job_id,
        "n2-standard-2",
    )
    assert losses["counts"]["preempted"] >= 1
    # main_service deletes the preempted VM once it has counted it.
    deadline = time.monotonic() + 60
    while vm in gcp_spot.instances():
        assert time.monotonic() < deadline, "the preempted VM was not deleted"
        time.sleep(0.05)
    gcp_spot.wait_for_standby()
