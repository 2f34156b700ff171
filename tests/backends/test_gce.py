"""What only Compute Engine does, through the real google-cloud-compute client on the
fake Compute REST API (tests/backends/gce.py): what a VM is given, how errors and quota
read, which VMs are the cluster's, and the processes a VM runs.

Every VM a test starts is stopped when the fake is reset after the test.
"""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from burla.backends.gcp.compute import GceComputeProvider, machine_status
from burla.backends.gcp.gce_boot import startup_script
from burla.backends.gcp.gce_settings import GceSettings
from burla.core.errors import (
    BackendError,
    ConflictError,
    InvalidRequestError,
    TransientBackendError,
)
from burla.core.models import NodeType
from burla.core.protocols import BootSpec, Machine, MachineStatus
from burla.services.retrying import RetryingCompute
from tests.backends.gce import (
    CLUSTER,
    FAKE_NODE,
    IMAGE,
    NODE_TYPE,
    PROJECT,
    ZONE,
    boot,
    provider_on,
    settings,
    vm_name,
)
from tests.fakes.compute_api import FakeComputeApi

pytestmark = pytest.mark.integration

QUOTA_MESSAGE = "Quota 'CPUS' exceeded.  Limit: 24.0 in region us-central1."


@pytest.fixture
def api(compute_api: FakeComputeApi) -> Iterator[FakeComputeApi]:
    try:
        yield compute_api
    finally:
        compute_api.reset()


@pytest.fixture
async def provider(api: FakeComputeApi) -> AsyncIterator[GceComputeProvider]:
    compute = provider_on(api)
    try:
        yield compute
    finally:
        await compute.aclose()


async def running(compute: GceComputeProvider, node_id: str, timeout_s: float = 10) -> Machine:
    return await reaching(compute, node_id, MachineStatus.RUNNING, timeout_s)


async def reaching(
    compute: GceComputeProvider, node_id: str, status: MachineStatus, timeout_s: float = 10
) -> Machine:
    with anyio.fail_after(timeout_s):
        while True:
            machine = await compute.get(node_id)
            if machine is not None and machine.status is status:
                return machine
            await anyio.sleep(0.01)


def group_alive(group: int) -> bool:
    """True while any process of the process group is alive (not a zombie)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] not in "ZX":
            return True
    return False


# What the VM is given.


@pytest.mark.anyio
async def test_insert_body_names_labels_machine_type_and_startup_script(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    created = await provider.create(boot("node-a"))
    assert (created.node_id, created.node_type) == ("node-a", "n2-standard-4")
    [body] = api.inserted
    assert body["name"] == "gce-test-node-a"
    assert body["machineType"] == f"zones/{ZONE}/machineTypes/n2-standard-4"
    assert body["labels"] == {
        "burla-cluster": CLUSTER,
        "burla-node-id": "node-a",
        "burla-node-type": "n2-standard-4",
    }
    [disk] = body["disks"]
    assert disk["boot"] is True
    assert disk["autoDelete"] is True
    assert disk["initializeParams"]["sourceImage"] == IMAGE
    assert disk["initializeParams"]["diskSizeGb"] == "50"
    [interface] = body["networkInterfaces"]
    assert interface["accessConfigs"] == [{"name": "external-nat", "type": "ONE_TO_ONE_NAT"}]
    assert body["scheduling"]["provisioningModel"] == "STANDARD"
    metadata = {item["key"]: item["value"] for item in body["metadata"]["items"]}
    assert metadata["enable-guest-attributes"] == "TRUE"
    script = metadata["startup-script"]
    assert script.startswith("#!/bin/bash\n")
    assert str(FAKE_NODE) in script
    assert "export BURLA_MAIN_URL=http://127.0.0.1:1" in script


@pytest.mark.anyio
async def test_spot_vms_and_other_settings_reach_the_insert_body(api: FakeComputeApi) -> None:
    compute = provider_on(api, external_ip=False, disk_size_gb=200, network="global/networks/burla")
    spot = NODE_TYPE.model_copy(update={"spot": True})
    try:
        await compute.create(BootSpec("node-a", spot, main_url="http://127.0.0.1:1"))
    finally:
        await compute.aclose()
    [body] = api.inserted
    assert body["scheduling"] == {
        "provisioningModel": "SPOT",
        "instanceTerminationAction": "STOP",
        "onHostMaintenance": "TERMINATE",
        "automaticRestart": False,
    }
    assert body["disks"][0]["initializeParams"]["diskSizeGb"] == "200"
    [interface] = body["networkInterfaces"]
    assert interface["network"] == "global/networks/burla"
    assert "accessConfigs" not in interface


@pytest.mark.anyio
async def test_startup_script_installs_and_starts_the_node_with_its_identity(
    api: FakeComputeApi,
) -> None:
    # The install runs in the node's environment: it may install what the node will need.
    compute = provider_on(api, install_command='echo "burla for $BURLA_CONTAINERS" >installed')
    tricky = 'it\'s $HOME; `not run` "quoted"\nsecond line'
    env = {"BURLA_STORE_URL": "sqlite:///x.db", "TRICKY": tricky, "BURLA_CONTAINERS": "process"}
    try:
        await compute.create(boot("node-a", **env))
        machine = await running(compute, "node-a")
    finally:
        await compute.aclose()
    vm_dir = api.directory(PROJECT, ZONE, vm_name("node-a"))
    assert (vm_dir / "installed").read_text() == "burla for process\n"
    env = json.loads((vm_dir / "node" / "env.json").read_text())
    assert env["BURLA_NODE_ID"] == "node-a"
    assert NodeType.model_validate_json(env["BURLA_NODE_TYPE"]) == NODE_TYPE
    assert env["BURLA_MAIN_URL"] == "http://127.0.0.1:1"
    assert env["BURLA_NODE_DIR"] == str(vm_dir / "node")
    assert env["BURLA_STORE_URL"] == "sqlite:///x.db"
    assert env["TRICKY"] == tricky
    assert env["BURLA_NODE_ADDRESS_FROM"] == "gce-metadata"  # no address to export by hand
    # The address is where the node listens: the VM's internal IP and the published port.
    assert machine.address == (vm_dir / "node" / "address").read_text()
    host, port = machine.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5):
        pass


def test_the_default_startup_script_is_valid_bash(tmp_path: Path) -> None:
    production = GceSettings(project=PROJECT, zone=ZONE, cluster=CLUSTER, source_image=IMAGE)
    script = tmp_path / "startup-script"
    script.write_text(startup_script(production, boot("node-a", BURLA_SECRET="s'e\"c")))
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "python3 -m venv /opt/burla" in text
    assert "/opt/burla/bin/python -m burla.services.node_service" in text


@pytest.mark.anyio
async def test_operations_are_polled_through_the_given_endpoint(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    await provider.create(boot("node-a"))
    await provider.delete("node-a")
    operation_reads = [
        path for method, path in api.requests if "/operations/" in path and method == "GET"
    ]
    assert len(operation_reads) >= 2  # the insert's and the delete's, both answered RUNNING


def test_the_fakes_operations_can_be_waited_on(api: FakeComputeApi) -> None:
    """The wait call the API offers besides polling, through the real client."""
    options = {"api_endpoint": api.endpoint}
    instances = compute_v1.InstancesClient(
        credentials=AnonymousCredentials(), client_options=options
    )
    operations = compute_v1.ZoneOperationsClient(
        credentials=AnonymousCredentials(), client_options=options
    )
    try:
        resource = compute_v1.Instance(
            name="vm-a",
            machine_type=f"zones/{ZONE}/machineTypes/e2-small",
            disks=[compute_v1.AttachedDisk(boot=True)],
            network_interfaces=[compute_v1.NetworkInterface()],
        )
        started = instances.insert_unary(project=PROJECT, zone=ZONE, instance_resource=resource)
        assert started.status == compute_v1.Operation.Status.RUNNING
        done = operations.wait(project=PROJECT, zone=ZONE, operation=started.name)
        assert done.status == compute_v1.Operation.Status.DONE
        assert instances.get(project=PROJECT, zone=ZONE, instance="vm-a").status == "RUNNING"
    finally:
        instances.transport.close()
        operations.transport.close()


# Errors.


@pytest.mark.anyio
async def test_already_exists_is_a_conflict_in_either_form(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    await provider.create(boot("node-a"))
    with pytest.raises(ConflictError, match=r"node-a.*already exists"):
        await provider.create(boot("node-a"))
    api.fail_next_insert_operation(
        "RESOURCE_ALREADY_EXISTS", "The resource already exists", http_status=409
    )
    with pytest.raises(ConflictError, match=r"node-b.*already exists"):
        await provider.create(boot("node-b"))
    assert [machine.node_id for machine in await provider.list()] == ["node-a"]


@pytest.mark.anyio
async def test_quota_refused_at_insert_says_which_quota_and_what_to_do(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    api.refuse_next_insert(403, "quotaExceeded", QUOTA_MESSAGE)
    with pytest.raises(BackendError) as caught:
        await provider.create(boot("node-a"))
    assert not isinstance(caught.value, ConflictError)
    message = str(caught.value)
    assert "quota CPUS of project 'burla-test' is used up" in message
    assert "Limit: 24.0 in region us-central1" in message
    assert f"console.cloud.google.com/iam-admin/quotas?project={PROJECT}" in message
    assert "max_nodes" in message
    assert await provider.list() == []


@pytest.mark.anyio
@pytest.mark.parametrize("http_status", [403, None], ids=["with-http-status", "errors-only"])
async def test_quota_inside_a_finished_operation_says_which_quota(
    api: FakeComputeApi, provider: GceComputeProvider, http_status: int | None
) -> None:
    api.fail_next_insert_operation("QUOTA_EXCEEDED", QUOTA_MESSAGE, http_status=http_status)
    with pytest.raises(BackendError, match=r"quota CPUS of project 'burla-test' is used up"):
        await provider.create(boot("node-a"))
    assert await provider.list() == []
    assert await provider.get("node-a") is None


@pytest.mark.anyio
async def test_quota_named_only_in_the_details_is_named(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    api.fail_next_insert_operation(
        "QUOTA_EXCEEDED", "Quota exceeded.", http_status=403, quota_limit="GPUS-ALL-REGIONS"
    )
    with pytest.raises(BackendError, match="quota GPUS-ALL-REGIONS of project"):
        await provider.create(boot("node-a"))


@pytest.mark.anyio
async def test_other_failures_are_backend_errors_with_the_apis_message(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    api.fail_next_insert_operation(
        "ZONE_RESOURCE_POOL_EXHAUSTED", "The zone does not have enough resources", http_status=503
    )
    with pytest.raises(BackendError, match=r"no capacity.*another zone or node type"):
        await provider.create(boot("node-a"))
    api.refuse_next_insert(400, "invalid", "Invalid value for field 'resource.machineType'")
    with pytest.raises(BackendError, match=r"refused to create.*400.*resource\.machineType"):
        await provider.create(boot("node-a"))
    api.fail_next_insert_operation("INTERNAL_ERROR", "Internal error. Please try again.")
    with pytest.raises(BackendError, match=r"operation-.* failed.*Internal error"):
        await provider.create(boot("node-a"))
    assert await provider.list() == []


@pytest.mark.anyio
async def test_an_operation_that_never_finishes_is_given_up(api: FakeComputeApi) -> None:
    compute = provider_on(api, operation_timeout_s=0.3)
    try:
        api.stall_next_insert_operation()
        with pytest.raises(BackendError, match=r"operation-\d+ is not done after 0\.3 s"):
            await compute.create(boot("node-a"))
        # The VM may exist all the same: it is listed, so it can be deleted.
        assert [m.node_id for m in await compute.list()] == ["node-a"]
        assert await compute.delete("node-a") is True
    finally:
        await compute.aclose()


@pytest.mark.anyio
async def test_an_unreachable_api_is_a_transient_error(api: FakeComputeApi) -> None:
    with socket.socket() as probe:  # a port nobody listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    compute = GceComputeProvider(
        settings(),
        client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
        credentials=AnonymousCredentials(),
    )
    try:
        with pytest.raises(TransientBackendError, match="did not answer"):
            await compute.list()
    finally:
        await compute.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method_id", "code"),
    [
        ("compute.instances.list", 429),
        ("compute.instances.list", 403),  # rateLimitExceeded
        ("compute.instances.list", 500),
        ("compute.instances.insert", 503),
        ("compute.instances.get", 429),
        ("compute.instances.delete", 500),
    ],
)
async def test_documented_transient_errors_are_transient_and_ridden_over(
    api: FakeComputeApi, provider: GceComputeProvider, method_id: str, code: int
) -> None:
    compute = RetryingCompute(provider, rng=random.Random(0))
    if method_id.endswith(("get", "delete")):
        await provider.create(boot("node-a"))
    api.refuse_next(method_id, code=code, times=1)
    match method_id.rsplit(".", 1)[1]:
        case "list":
            with pytest.raises(TransientBackendError, match=f"for now: {code}"):
                await provider.list()
            api.refuse_next(method_id, code=code, times=2)
            assert await compute.list() == []
        case "insert":
            assert (await compute.create(boot("node-a"))).node_id == "node-a"
        case "get":
            assert (await compute.get("node-a")) is not None
        case "delete":
            assert await compute.delete("node-a") is True
    verb = {"list": "GET", "insert": "POST", "get": "GET", "delete": "DELETE"}
    kind = method_id.rsplit(".", 1)[1]
    path = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances" + (
        "/" + vm_name("node-a") if kind in ("get", "delete") else ""
    )
    tried = api.requests.count((verb[kind], path))
    assert tried >= 2, "the refused call was tried again"


@pytest.mark.anyio
async def test_a_create_retried_after_it_was_made_takes_the_machine(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    made = await provider.create(boot("node-a"))

    class FailedAfterMaking:
        """A provider whose first create made the VM but answered with a 503."""

        tries = 0

        async def create(self, spec: BootSpec) -> Machine:
            self.tries += 1
            if self.tries == 1:
                raise TransientBackendError("503 after the insert went through")
            return await provider.create(spec)

        get = provider.get
        list = provider.list
        delete = provider.delete

    compute = RetryingCompute(FailedAfterMaking(), rng=random.Random(0))
    assert (await compute.create(boot("node-a"))).node_id == made.node_id
    with pytest.raises(ConflictError):  # a name that exists from the start is a conflict
        await RetryingCompute(provider).create(boot("node-a"))


@pytest.mark.anyio
async def test_requests_compute_engine_cannot_take_create_nothing(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    refused = [
        (boot("Node_A"), "node id 'Node_A'"),
        (boot("n" * 60), "at most 54 characters"),
        (BootSpec("node-a", NodeType(name="big gpu", cpus=8, ram_gb=32), "http://x"), "big gpu"),
        (boot("node-a", BURLA_NODE_DIR="/elsewhere"), "BURLA_NODE_DIR"),
        (boot("node-a", **{"NOT-A-NAME": "x"}), "NOT-A-NAME"),
    ]
    for spec, message in refused:
        with pytest.raises(InvalidRequestError, match=message):
            await provider.create(spec)
    assert api.inserted == []
    assert await provider.get("Node_A") is None
    assert await provider.delete("Node_A") is False


def test_settings_refuse_a_cluster_name_that_cannot_label_vms() -> None:
    with pytest.raises(ValueError, match="cluster name 'My_Cluster'"):
        settings(cluster="My_Cluster")
    with pytest.raises(ValueError, match="max_poll_s"):
        settings(first_poll_s=2, max_poll_s=1)


# Which VMs are the cluster's.


@pytest.mark.anyio
async def test_list_get_and_delete_see_only_this_clusters_vms(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    other = provider_on(api, cluster="other")
    try:
        await other.create(boot("node-a"))
        await other.create(boot("node-z"))
        await provider.create(boot("node-b"))
        assert [m.node_id for m in await provider.list()] == ["node-b"]
        assert [m.node_id for m in await other.list()] == ["node-a", "node-z"]
        assert await provider.get("node-a") is None
        assert await provider.delete("node-a") is False
        assert [m.node_id for m in await other.list()] == ["node-a", "node-z"]
    finally:
        await other.aclose()
    list_paths = [path for method, path in api.requests if method == "GET"]
    assert any(path.endswith("/instances") for path in list_paths)


@pytest.mark.anyio
async def test_a_vm_of_another_cluster_with_the_same_name_is_left_alone(
    api: FakeComputeApi,
) -> None:
    # Cluster "a" node "b-node" and cluster "a-b" node "node" both name the VM "a-b-node".
    first, second = provider_on(api, cluster="a"), provider_on(api, cluster="a-b")
    try:
        await first.create(boot("b-node"))
        with pytest.raises(ConflictError, match=r"'node'.*already exists"):
            await second.create(boot("node"))
        assert await second.get("node") is None
        assert await second.list() == []
        assert await second.delete("node") is False
        assert [m.node_id for m in await first.list()] == ["b-node"]
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.anyio
async def test_list_follows_pages(
    api: FakeComputeApi, provider: GceComputeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "page_limit", 2)
    node_ids = [f"node-{n}" for n in range(5)]
    for node_id in reversed(node_ids):
        await provider.create(boot(node_id))
    assert [m.node_id for m in await provider.list()] == node_ids
    list_reads = [path for method, path in api.requests if path.endswith("/instances")]
    assert len(list_reads) >= 1 + 3  # five creates, then one list of three pages


# Status and processes.


@pytest.mark.anyio
async def test_a_delete_while_another_is_under_way_waits_for_it(
    api: FakeComputeApi, provider: GceComputeProvider
) -> None:
    """Compute Engine refuses a second delete while the first stops the VM (400,
    resourceNotReady): a transient refusal, so a retried delete finds the VM gone."""
    await provider.create(boot("node-a", FAKE_NODE_IGNORE_SIGTERM="1"))  # stops in 3 s
    await running(provider, "node-a")
    compute = RetryingCompute(provider, rng=random.Random(0))
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(provider.delete, "node-a")
            await reaching(provider, "node-a", MachineStatus.STOPPING)
            with pytest.raises(TransientBackendError, match="is not ready"):
                await provider.delete("node-a")
            assert await compute.delete("node-a") is False  # the first one deleted it
    assert await provider.list() == []


@pytest.mark.anyio
async def test_delete_stops_the_vms_processes(
    api: FakeComputeApi, provider: GceComputeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "stop_grace_s", 0.2)
    await provider.create(boot("node-a"))
    await provider.create(boot("node-b", FAKE_NODE_IGNORE_SIGTERM="1"))
    await running(provider, "node-a")
    await running(provider, "node-b")
    groups = {node_id: api.pid(PROJECT, ZONE, vm_name(node_id)) for node_id in ("node-a", "node-b")}
    assert all(group is not None and group_alive(group) for group in groups.values())
    with anyio.fail_after(10):
        assert await provider.delete("node-a") is True
        assert await provider.delete("node-b") is True
    assert not any(group_alive(group) for group in groups.values() if group is not None)
    assert await provider.list() == []


@pytest.mark.anyio
async def test_a_vm_whose_node_never_listens_stays_booting(api: FakeComputeApi) -> None:
    compute = provider_on(api, node_command=(sys.executable, "-c", "raise SystemExit(3)"))
    try:
        await compute.create(boot("node-a"))
        group = api.pid(PROJECT, ZONE, vm_name("node-a"))
        assert group is not None
        with anyio.fail_after(10):
            while group_alive(group):  # noqa: ASYNC110 - the script ends after the node
                await anyio.sleep(0.01)
        machine = await compute.get("node-a")
        assert machine is not None
        assert (machine.status, machine.address) == (MachineStatus.BOOTING, None)
    finally:
        await compute.aclose()


@pytest.mark.parametrize(
    ("instance_status", "listening", "expected"),
    [
        ("PROVISIONING", False, MachineStatus.BOOTING),
        ("STAGING", False, MachineStatus.BOOTING),
        ("RUNNING", False, MachineStatus.BOOTING),
        ("RUNNING", True, MachineStatus.RUNNING),
        ("STOPPING", True, MachineStatus.STOPPING),
        ("SUSPENDING", True, MachineStatus.STOPPING),
        ("PENDING_STOP", True, MachineStatus.STOPPING),
        ("TERMINATED", False, MachineStatus.FAILED),
        ("STOPPED", False, MachineStatus.FAILED),
        ("SUSPENDED", False, MachineStatus.FAILED),
        ("REPAIRING", False, MachineStatus.FAILED),
        ("SOME_NEW_STATUS", False, MachineStatus.BOOTING),
    ],
)
def test_instance_status_maps_to_machine_status(
    instance_status: str, listening: bool, expected: MachineStatus
) -> None:
    assert machine_status(instance_status, listening) is expected
