"""The fake Compute Engine API's spot VMs, through Google's own clients: the scheduling
options Compute Engine takes, fills in and refuses, and a preemption as Compute Engine
makes one (the VM stops, its processes end, a compute.instances.preempted operation is
recorded)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as google_errors
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from tests.fakes.compute_api import FakeComputeApi

pytestmark = pytest.mark.integration

PROJECT = "burla-test"
ZONE = "us-central1-a"
PREEMPTED = 'operationType = "compute.instances.preempted"'


@pytest.fixture
def api(compute_api: FakeComputeApi) -> Iterator[FakeComputeApi]:
    compute_api.stop_grace_s = 0.5
    try:
        yield compute_api
    finally:
        compute_api.stop_grace_s = 3.0
        compute_api.reset()


@pytest.fixture
def clients(
    api: FakeComputeApi,
) -> Iterator[tuple[compute_v1.InstancesClient, compute_v1.ZoneOperationsClient]]:
    where: dict[str, Any] = {
        "credentials": AnonymousCredentials(),
        "client_options": {"api_endpoint": api.endpoint},
    }
    instances = compute_v1.InstancesClient(**where)
    operations = compute_v1.ZoneOperationsClient(**where)
    try:
        yield instances, operations
    finally:
        instances.transport.close()
        operations.transport.close()


def insert(
    clients: tuple[compute_v1.InstancesClient, compute_v1.ZoneOperationsClient],
    name: str,
    scheduling: compute_v1.Scheduling,
    script: str = "",
) -> compute_v1.Instance:
    instances, operations = clients
    resource = compute_v1.Instance(
        name=name,
        machine_type=f"zones/{ZONE}/machineTypes/e2-small",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image="projects/debian-cloud/global/images/family/debian-12"
                ),
            )
        ],
        network_interfaces=[compute_v1.NetworkInterface()],
        metadata=compute_v1.Metadata(items=[compute_v1.Items(key="startup-script", value=script)]),
        scheduling=scheduling,
    )
    started = instances.insert_unary(project=PROJECT, zone=ZONE, instance_resource=resource)
    operations.wait(project=PROJECT, zone=ZONE, operation=started.name)
    return instances.get(project=PROJECT, zone=ZONE, instance=name)


def preempted_targets(operations: compute_v1.ZoneOperationsClient) -> list[int]:
    request = compute_v1.ListZoneOperationsRequest(project=PROJECT, zone=ZONE, filter=PREEMPTED)
    return [operation.target_id for operation in operations.list(request=request)]


SPOT = compute_v1.Scheduling(provisioning_model="SPOT")


def test_compute_engine_fills_in_what_spot_and_standard_vms_run_with(clients) -> None:
    spot = insert(clients, "spot-vm", SPOT).scheduling
    assert spot.provisioning_model == "SPOT"
    assert (spot.automatic_restart, spot.on_host_maintenance) == (False, "TERMINATE")
    assert spot.instance_termination_action == "STOP"
    standard = insert(clients, "standard-vm", compute_v1.Scheduling()).scheduling
    assert standard.provisioning_model == "STANDARD"
    assert (standard.automatic_restart, standard.on_host_maintenance) == (True, "MIGRATE")
    assert "instance_termination_action" not in standard


@pytest.mark.parametrize(
    ("scheduling", "field"),
    [
        (compute_v1.Scheduling(provisioning_model="SPOT", automatic_restart=True), "automatic"),
        (compute_v1.Scheduling(provisioning_model="SPOT", on_host_maintenance="MIGRATE"), "onHost"),
        (compute_v1.Scheduling(instance_termination_action="DELETE"), "instanceTermination"),
        (compute_v1.Scheduling(provisioning_model="STANDARD", preemptible=True), "preemptible"),
        (compute_v1.Scheduling(provisioning_model="CHEAP"), "provisioningModel"),
    ],
)
def test_scheduling_compute_engine_refuses_is_refused(clients, scheduling, field) -> None:
    with pytest.raises(google_errors.BadRequest, match=f"resource.scheduling.{field}"):
        insert(clients, "refused", scheduling)
    instances, _ = clients
    with pytest.raises(google_errors.NotFound):
        instances.get(project=PROJECT, zone=ZONE, instance="refused")


def process_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def test_a_preempted_spot_vm_stops_and_its_preemption_is_an_operation(
    api: FakeComputeApi, clients
) -> None:
    instances, operations = clients
    vm = insert(clients, "spot-vm", SPOT, script="sleep 600")
    insert(clients, "other-spot-vm", SPOT, script="sleep 600")
    pid = api.pid(PROJECT, ZONE, "spot-vm")
    assert pid is not None
    assert preempted_targets(operations) == []
    api.preempt(PROJECT, ZONE, "spot-vm")
    assert instances.get(project=PROJECT, zone=ZONE, instance="spot-vm").status == "TERMINATED"
    deadline = time.monotonic() + 10
    while not process_gone(pid):
        assert time.monotonic() < deadline, "the preempted VM's processes still run"
        time.sleep(0.02)
    assert preempted_targets(operations) == [vm.id]
    request = compute_v1.ListZoneOperationsRequest(project=PROJECT, zone=ZONE, filter=PREEMPTED)
    [operation] = operations.list(request=request)
    assert operation.target_link.endswith(f"/zones/{ZONE}/instances/spot-vm")
    assert operation.status == compute_v1.Operation.Status.DONE
    other = instances.get(project=PROJECT, zone=ZONE, instance="other-spot-vm")
    assert other.status == "RUNNING"


def test_a_spot_vm_that_asks_to_be_deleted_on_preemption_is(api: FakeComputeApi, clients) -> None:
    instances, operations = clients
    scheduling = compute_v1.Scheduling(
        provisioning_model="SPOT", instance_termination_action="DELETE"
    )
    vm = insert(clients, "spot-vm", scheduling, script="sleep 600")
    api.preempt(PROJECT, ZONE, "spot-vm")
    with pytest.raises(google_errors.NotFound):
        instances.get(project=PROJECT, zone=ZONE, instance="spot-vm")
    assert preempted_targets(operations) == [vm.id]


def test_only_a_running_spot_vm_can_be_preempted(api: FakeComputeApi, clients) -> None:
    insert(clients, "standard-vm", compute_v1.Scheduling())
    with pytest.raises(ValueError, match="not a spot VM"):
        api.preempt(PROJECT, ZONE, "standard-vm")
    insert(clients, "spot-vm", SPOT)
    api.preempt(PROJECT, ZONE, "spot-vm")
    with pytest.raises(ValueError, match="no running VM"):
        api.preempt(PROJECT, ZONE, "spot-vm")
