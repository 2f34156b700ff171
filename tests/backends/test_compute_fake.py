"""The fake Compute Engine API (tests/fakes/compute_api.py) does what `burla deploy` needs of
Compute Engine, through Google's own clients: firewall rules and global operations, reset,
setMetadata and setLabels, what a VM's metadata server tells it, transient errors, and VMs
of a fake Debian image whose startup script installs a systemd unit."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.api_core import exceptions as google_errors
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from tests.fakes.compute_api import FakeComputeApi, FakeImage

pytestmark = pytest.mark.integration

PROJECT = "burla-test"
ZONE = "us-central1-a"
IMAGE = "projects/burla-test/global/images/debian-12-fake"
DONE = compute_v1.Operation.Status.DONE


@dataclass(frozen=True)
class Clients:
    """Google's REST clients, all on the fake's endpoint."""

    firewalls: compute_v1.FirewallsClient
    instances: compute_v1.InstancesClient
    global_operations: compute_v1.GlobalOperationsClient
    zone_operations: compute_v1.ZoneOperationsClient

    def done_globally(self, started: compute_v1.Operation) -> compute_v1.Operation:
        done = self.global_operations.wait(project=PROJECT, operation=started.name)
        assert done.status == DONE
        return done

    def done_in_zone(self, started: compute_v1.Operation) -> compute_v1.Operation:
        done = self.zone_operations.wait(project=PROJECT, zone=ZONE, operation=started.name)
        assert done.status == DONE
        return done

    def instance(self, name: str) -> compute_v1.Instance:
        return self.instances.get(project=PROJECT, zone=ZONE, instance=name)


@pytest.fixture
def api(compute_api: FakeComputeApi) -> Iterator[FakeComputeApi]:
    try:
        yield compute_api
    finally:
        compute_api.reset()


@pytest.fixture
def google(api: FakeComputeApi) -> Iterator[Clients]:
    options = {"api_endpoint": api.endpoint}
    where: dict[str, Any] = {"credentials": AnonymousCredentials(), "client_options": options}
    clients = Clients(
        compute_v1.FirewallsClient(**where),
        compute_v1.InstancesClient(**where),
        compute_v1.GlobalOperationsClient(**where),
        compute_v1.ZoneOperationsClient(**where),
    )
    try:
        yield clients
    finally:
        for client in (
            clients.firewalls,
            clients.instances,
            clients.global_operations,
            clients.zone_operations,
        ):
            client.transport.close()


def rule(name: str, **fields: object) -> compute_v1.Firewall:
    fields.setdefault("allowed", [compute_v1.Allowed(I_p_protocol="tcp", ports=["8080"])])
    return compute_v1.Firewall(name=name, **fields)


def rule_names(google: Clients, filter: str = "") -> list[str]:
    request = compute_v1.ListFirewallsRequest(project=PROJECT, filter=filter)
    return [firewall.name for firewall in google.firewalls.list(request=request)]


def add_rule(google: Clients, firewall: compute_v1.Firewall) -> compute_v1.Operation:
    started = google.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall)
    return google.done_globally(started)


def boot_vm(
    google: Clients,
    name: str,
    *,
    script: str | None = None,
    image: str = "projects/debian-cloud/global/images/family/debian-12",
    external_ip: bool = True,
    labels: dict[str, str] | None = None,
) -> compute_v1.Instance:
    items = [compute_v1.Items(key="enable-guest-attributes", value="TRUE")]
    if script is not None:
        items.append(compute_v1.Items(key="startup-script", value=script))
    configs = [compute_v1.AccessConfig(name="external-nat")] if external_ip else []
    resource = compute_v1.Instance(
        name=name,
        machine_type=f"zones/{ZONE}/machineTypes/e2-small",
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(source_image=image),
            )
        ],
        network_interfaces=[compute_v1.NetworkInterface(access_configs=configs)],
        metadata=compute_v1.Metadata(items=items),
        labels=labels or {},
    )
    started = google.instances.insert_unary(project=PROJECT, zone=ZONE, instance_resource=resource)
    google.done_in_zone(started)
    return google.instance(name)


def metadata_server(api: FakeComputeApi, vm: str, path: str, **headers: str) -> httpx.Response:
    url = f"{api.endpoint}/vms/{PROJECT}/{ZONE}/{vm}/computeMetadata/v1/{path}"
    with httpx.Client(trust_env=False) as client:
        return client.get(url, headers={"Metadata-Flavor": "Google", **headers})


def eventually(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == group and fields[0] not in "ZX":
                members.append(int(entry.name))
    return members


# Firewall rules and global operations.


def test_a_firewall_rule_is_made_read_listed_patched_and_deleted(google: Clients) -> None:
    started = google.firewalls.insert_unary(
        project=PROJECT,
        firewall_resource=rule(
            "burla-nodes", source_ranges=["10.0.0.0/8"], target_tags=["burla-node"]
        ),
    )
    assert started.status == compute_v1.Operation.Status.RUNNING
    assert started.operation_type == "insert"
    assert started.target_link.endswith(f"/projects/{PROJECT}/global/firewalls/burla-nodes")
    assert not started.zone  # a global operation
    assert google.done_globally(started).progress == 100
    assert google.global_operations.get(project=PROJECT, operation=started.name).status == DONE

    made = google.firewalls.get(project=PROJECT, firewall="burla-nodes")
    assert made.kind == "compute#firewall"
    assert made.network == (
        f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/global/networks/default"
    )
    assert (made.priority, made.direction, made.disabled) == (1000, "INGRESS", False)
    assert list(made.source_ranges) == ["10.0.0.0/8"]
    assert list(made.target_tags) == ["burla-node"]
    assert [(a.I_p_protocol, list(a.ports)) for a in made.allowed] == [("tcp", ["8080"])]
    assert made.log_config.enable is False
    assert made.self_link.endswith("/global/firewalls/burla-nodes")

    add_rule(google, rule("burla-main", source_ranges=["203.0.113.7/32"]))
    add_rule(google, rule("other-ssh"))
    assert rule_names(google, 'name eq "burla-.*"') == ["burla-main", "burla-nodes"]
    assert rule_names(google, 'name = "burla-main"') == ["burla-main"]

    patched = rule("burla-nodes", source_ranges=["10.128.0.0/9"])
    google.done_globally(
        google.firewalls.patch_unary(
            project=PROJECT, firewall="burla-nodes", firewall_resource=patched
        )
    )
    now = google.firewalls.get(project=PROJECT, firewall="burla-nodes")
    assert list(now.source_ranges) == ["10.128.0.0/9"]
    assert list(now.target_tags) == ["burla-node"]  # a merge patch keeps what it does not name
    assert now.id == made.id

    google.done_globally(google.firewalls.delete_unary(project=PROJECT, firewall="burla-nodes"))
    with pytest.raises(google_errors.NotFound, match="burla-nodes' was not found"):
        google.firewalls.get(project=PROJECT, firewall="burla-nodes")
    with pytest.raises(google_errors.NotFound):
        google.firewalls.delete_unary(project=PROJECT, firewall="burla-nodes")


def test_rules_get_compute_engines_defaults(google: Clients) -> None:
    add_rule(google, rule("open-ingress"))
    add_rule(
        google,
        rule(
            "egress",
            direction="EGRESS",
            denied=[compute_v1.Denied(I_p_protocol="all")],
            allowed=[],
            network=f"projects/{PROJECT}/global/networks/burla",
            priority=0,
        ),
    )
    ingress = google.firewalls.get(project=PROJECT, firewall="open-ingress")
    assert list(ingress.source_ranges) == ["0.0.0.0/0"]  # no source: anywhere
    egress = google.firewalls.get(project=PROJECT, firewall="egress")
    assert list(egress.destination_ranges) == ["0.0.0.0/0"]
    assert not egress.source_ranges
    assert egress.network.endswith(f"projects/{PROJECT}/global/networks/burla")
    assert egress.priority == 0


@pytest.mark.parametrize(
    ("firewall", "message"),
    [
        (rule("Burla_Nodes"), "resource.name"),
        (rule("no-entries", allowed=[]), "Required field 'resource.allowed'"),
        (
            rule("both", denied=[compute_v1.Denied(I_p_protocol="udp")]),
            "either allowed or denied",
        ),
        (rule("no-protocol", allowed=[compute_v1.Allowed(ports=["22"])]), "IPProtocol"),
        (rule("bad-protocol", allowed=[compute_v1.Allowed(I_p_protocol="http")]), "protocol"),
        (
            rule("icmp-ports", allowed=[compute_v1.Allowed(I_p_protocol="icmp", ports=["1"])]),
            "tcp, udp and sctp",
        ),
        (
            rule("big-port", allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["70000"])]),
            r"ports\[0\]",
        ),
        (
            rule("bad-range", allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["9-1"])]),
            "Invalid port",
        ),
        (rule("bad-cidr", source_ranges=["10.0.0.0/33"]), r"sourceRanges\[0\]"),
        (rule("mixed", source_ranges=["10.0.0.0/8", "2001:db8::/32"]), "IPv4 or IPv6"),
        (rule("bad-tag", target_tags=["Burla Node"]), r"targetTags\[0\]"),
        (rule("egress-tags", direction="EGRESS", source_tags=["a"]), "EGRESS"),
        (rule("sideways", direction="SIDEWAYS"), "INGRESS or EGRESS"),
        (rule("low", priority=70000), "0 and 65535"),
        (rule("bad-net", network="networks/default"), "resource.network"),
        (
            rule("accounts", target_tags=["a"], target_service_accounts=["x@p.iam.com"]),
            "at the same time",
        ),
    ],
)
def test_rules_compute_engine_would_refuse_are_refused(
    google: Clients, firewall: compute_v1.Firewall, message: str
) -> None:
    with pytest.raises(google_errors.BadRequest, match=message) as refused:
        google.firewalls.insert_unary(project=PROJECT, firewall_resource=firewall)
    assert refused.value.errors[0]["reason"] in ("invalid", "required")
    assert rule_names(google) == []


def test_a_taken_name_conflicts_and_a_patch_keeps_what_cannot_change(google: Clients) -> None:
    add_rule(google, rule("burla-nodes"))
    with pytest.raises(google_errors.Conflict, match="burla-nodes' already exists"):
        google.firewalls.insert_unary(project=PROJECT, firewall_resource=rule("burla-nodes"))
    with pytest.raises(google_errors.BadRequest, match="direction cannot be changed"):
        google.firewalls.patch_unary(
            project=PROJECT,
            firewall="burla-nodes",
            firewall_resource=compute_v1.Firewall(direction="EGRESS"),
        )
    with pytest.raises(google_errors.NotFound):
        google.firewalls.patch_unary(
            project=PROJECT, firewall="nothing", firewall_resource=rule("nothing")
        )


def test_list_filters_in_both_documented_forms_and_pages(
    api: FakeComputeApi, google: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_rule(google, rule("burla-main", target_tags=["burla-main"], priority=900))
    add_rule(google, rule("burla-nodes", target_tags=["burla-node"]))
    add_rule(google, rule("ssh", allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["22"])]))
    expected = {
        "name ne burla-.*": ["ssh"],
        "(name eq burla-.*) (priority eq 1000)": ["burla-nodes"],
        'name != "ssh"': ["burla-main", "burla-nodes"],
        "name:nodes": ["burla-nodes"],
        "targetTags:burla-main": ["burla-main"],
        "priority < 1000 OR name = ssh": ["burla-main", "ssh"],
        '(direction = "INGRESS") AND (targetTags:*)': ["burla-main", "burla-nodes"],
        "": ["burla-main", "burla-nodes", "ssh"],
    }
    for text, names in expected.items():
        assert rule_names(google, text) == names, text
    with pytest.raises(google_errors.BadRequest, match="Invalid value for field 'filter'"):
        rule_names(google, "name = (ssh")
    with pytest.raises(google_errors.BadRequest, match="filter"):
        rule_names(google, "(name eq ssh) name = ssh")
    monkeypatch.setattr(api, "page_limit", 2)
    assert rule_names(google) == ["burla-main", "burla-nodes", "ssh"]
    pages = [path for method, path in api.requests if path.endswith("/global/firewalls")]
    assert len(pages) >= 2


# Transient errors.


def test_the_next_calls_of_a_route_get_the_transient_errors_google_documents(
    api: FakeComputeApi, google: Clients
) -> None:
    api.refuse_next("compute.firewalls.insert", code=503)
    with pytest.raises(google_errors.ServiceUnavailable) as refused:
        google.firewalls.insert_unary(project=PROJECT, firewall_resource=rule("burla-nodes"))
    assert refused.value.errors[0]["reason"] == "backendError"
    assert rule_names(google) == []  # nothing was made
    started = google.firewalls.insert_unary(project=PROJECT, firewall_resource=rule("burla-nodes"))

    api.refuse_next("compute.globalOperations.wait", code=429, times=2)
    for _ in range(2):
        with pytest.raises(google_errors.TooManyRequests) as limited:
            google.global_operations.wait(project=PROJECT, operation=started.name)
        assert limited.value.errors[0]["reason"] == "rateLimitExceeded"
    google.done_globally(started)

    # Google's client retries a get answered 503 by itself; the fake saw every try.
    api.refuse_next("compute.firewalls.get", code=503, times=2)
    assert google.firewalls.get(project=PROJECT, firewall="burla-nodes").name == "burla-nodes"
    tries = [p for m, p in api.requests if m == "GET" and p.endswith("/firewalls/burla-nodes")]
    assert len(tries) == 3

    api.refuse_next("compute.instances.reset", code=500)
    with pytest.raises(google_errors.InternalServerError):
        google.instances.reset_unary(project=PROJECT, zone=ZONE, instance="vm-a")
    with pytest.raises(google_errors.NotFound):  # the refusal was used up
        google.instances.reset_unary(project=PROJECT, zone=ZONE, instance="vm-a")
    with pytest.raises(ValueError, match=r"no route 'compute\.firewall\.insert'"):
        api.refuse_next("compute.firewall.insert")
    with pytest.raises(ValueError, match="404 is not one of the transient errors"):
        api.refuse_next("compute.firewalls.insert", code=404)


# Instances: metadata, labels, external IPs, the metadata server, reset.


def test_set_metadata_needs_the_current_fingerprint(api: FakeComputeApi, google: Clients) -> None:
    vm = boot_vm(google, "vm-a")
    before = vm.metadata.fingerprint
    assert before
    wanted = compute_v1.Metadata(
        fingerprint=before, items=[compute_v1.Items(key="burla-role", value="main")]
    )
    for stale in (
        compute_v1.Metadata(items=wanted.items),
        compute_v1.Metadata(fingerprint="AAAAAAAAAAA=", items=wanted.items),
    ):
        with pytest.raises(google_errors.PreconditionFailed, match="fingerprint") as refused:
            google.instances.set_metadata_unary(
                project=PROJECT, zone=ZONE, instance="vm-a", metadata_resource=stale
            )
        assert refused.value.errors[0]["reason"] == "conditionNotMet"
    assert metadata_server(api, "vm-a", "instance/attributes/burla-role").status_code == 404

    started = google.instances.set_metadata_unary(
        project=PROJECT, zone=ZONE, instance="vm-a", metadata_resource=wanted
    )
    assert started.operation_type == "setMetadata"
    google.done_in_zone(started)
    after = google.instance("vm-a").metadata
    assert [(item.key, item.value) for item in after.items] == [("burla-role", "main")]
    assert after.fingerprint != before
    assert metadata_server(api, "vm-a", "instance/attributes/burla-role").text == "main"
    assert metadata_server(api, "vm-a", "instance/attributes/").text == "burla-role\n"
    with pytest.raises(google_errors.PreconditionFailed):  # the old fingerprint is stale now
        google.instances.set_metadata_unary(
            project=PROJECT, zone=ZONE, instance="vm-a", metadata_resource=wanted
        )
    bad = compute_v1.Metadata(
        fingerprint=after.fingerprint, items=[compute_v1.Items(key="a b", value="x")]
    )
    with pytest.raises(google_errors.BadRequest, match="key"):
        google.instances.set_metadata_unary(
            project=PROJECT, zone=ZONE, instance="vm-a", metadata_resource=bad
        )


def test_set_labels_needs_the_current_label_fingerprint(google: Clients) -> None:
    vm = boot_vm(google, "vm-a", labels={"burla-cluster": "one"})
    boot_vm(google, "vm-b", labels={"burla-cluster": "two"})
    request = compute_v1.InstancesSetLabelsRequest(labels={"burla-cluster": "two"})
    with pytest.raises(google_errors.PreconditionFailed, match="Labels fingerprint") as refused:
        google.instances.set_labels_unary(
            project=PROJECT,
            zone=ZONE,
            instance="vm-a",
            instances_set_labels_request_resource=request,
        )
    assert refused.value.errors[0]["location"] == "If-Match"
    request.label_fingerprint = vm.label_fingerprint
    google.done_in_zone(
        google.instances.set_labels_unary(
            project=PROJECT,
            zone=ZONE,
            instance="vm-a",
            instances_set_labels_request_resource=request,
        )
    )
    changed = google.instance("vm-a")
    assert dict(changed.labels) == {"burla-cluster": "two"}
    assert changed.label_fingerprint != vm.label_fingerprint
    request = compute_v1.ListInstancesRequest(
        project=PROJECT, zone=ZONE, filter='labels.burla-cluster = "two"'
    )
    assert [vm.name for vm in google.instances.list(request=request)] == ["vm-a", "vm-b"]
    request = compute_v1.InstancesSetLabelsRequest(
        labels={"Bad Key": "x"}, label_fingerprint=changed.label_fingerprint
    )
    with pytest.raises(google_errors.BadRequest, match="Keys must match"):
        google.instances.set_labels_unary(
            project=PROJECT,
            zone=ZONE,
            instance="vm-a",
            instances_set_labels_request_resource=request,
        )


def test_an_access_config_gives_an_external_ip(api: FakeComputeApi, google: Clients) -> None:
    public = boot_vm(google, "vm-public")
    private = boot_vm(google, "vm-private", external_ip=False)
    [interface] = public.network_interfaces
    assert interface.network_i_p == "127.0.0.1"
    [config] = interface.access_configs
    assert (config.nat_i_p, config.type_, config.name) == (
        "127.0.0.1",
        "ONE_TO_ONE_NAT",
        "external-nat",
    )
    assert not private.network_interfaces[0].access_configs
    external = "instance/network-interfaces/0/access-configs/0/external-ip"
    assert metadata_server(api, "vm-public", external).text == "127.0.0.1"
    assert metadata_server(api, "vm-private", external).status_code == 404
    listed = {vm.name: vm for vm in google.instances.list(project=PROJECT, zone=ZONE)}
    assert listed["vm-public"].network_interfaces[0].access_configs[0].nat_i_p == "127.0.0.1"


def test_a_vms_metadata_server_says_who_and_where_it_is(
    api: FakeComputeApi, google: Clients
) -> None:
    script = (
        "curl -sf -X PUT -H 'Metadata-Flavor: Google' --data 8080 "
        '"http://$GCE_METADATA_HOST/computeMetadata/v1/instance/guest-attributes/burla/port"\n'
    )
    vm = boot_vm(google, "vm-a", script=script)
    number = api.project_number(PROJECT)
    assert re.fullmatch(r"\d{12}", number)
    expected = {
        "instance/name": "vm-a",
        "instance/id": str(vm.id),
        "instance/zone": f"projects/{number}/zones/{ZONE}",
        "project/project-id": PROJECT,
        "project/numeric-project-id": number,
        "instance/network-interfaces/0/ip": "127.0.0.1",
    }
    for path, value in expected.items():
        answer = metadata_server(api, "vm-a", path)
        assert (answer.status_code, answer.text) == (200, value), path
        assert answer.headers["metadata-flavor"] == "Google"
    port = "instance/guest-attributes/burla/port"
    eventually(lambda: metadata_server(api, "vm-a", port).status_code == 200)
    assert metadata_server(api, "vm-a", port).text == "8080"
    assert metadata_server(api, "vm-a", "instance/guest-attributes/burla/none").status_code == 404
    assert metadata_server(api, "vm-a", "instance/attributes/nothing").status_code == 404
    url = f"{api.endpoint}/vms/{PROJECT}/{ZONE}/vm-a/computeMetadata/v1/instance/name"
    with httpx.Client(trust_env=False) as client:
        assert client.get(url).status_code == 403  # no Metadata-Flavor: Google
    forwarded = metadata_server(api, "vm-a", "instance/name", **{"X-Forwarded-For": "1.2.3.4"})
    assert forwarded.status_code == 403


def test_reset_runs_the_startup_script_again(api: FakeComputeApi, google: Clients) -> None:
    script = "echo boot >>boots\nexec sleep 600\n"
    boot_vm(google, "vm-a", script=script)
    directory = api.directory(PROJECT, ZONE, "vm-a")
    first = api.pid(PROJECT, ZONE, "vm-a")
    assert first is not None
    eventually(lambda: (directory / "boots").exists())
    started = google.instances.reset_unary(project=PROJECT, zone=ZONE, instance="vm-a")
    assert started.operation_type == "reset"
    google.done_in_zone(started)
    assert not group_members(first)  # a hard reset: everything of the first boot is gone
    assert api.pid(PROJECT, ZONE, "vm-a") not in (None, first)
    eventually(lambda: (directory / "boots").read_text() == "boot\nboot\n")
    assert google.instance("vm-a").status == "RUNNING"
    api.terminate(PROJECT, ZONE, "vm-a")
    with pytest.raises(google_errors.BadRequest, match="is not ready"):
        google.instances.reset_unary(project=PROJECT, zone=ZONE, instance="vm-a")


# A VM of a fake Debian image.

SERVER = """\
import http.server, os, sys

class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        facts = [str(os.getpid()), os.environ["GREETING"], os.environ["IMAGE_MARK"], os.getcwd()]
        body = " | ".join(facts).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
"""


def echo_script(port: int) -> str:
    """A startup script that installs the echo service as a systemd unit and starts it."""
    unit = textwrap.dedent(
        f"""\
        [Unit]
        Description=Answers with its pid and environment
        After=network-online.target

        [Service]
        Environment=PORT={port} GREETING=overridden
        EnvironmentFile=/etc/burla/echo.env
        EnvironmentFile=-/etc/burla/absent.env
        WorkingDirectory=/opt/echo
        ExecStart={sys.executable} /opt/echo/server.py $PORT
        Restart=always
        RestartSec=0.1

        [Install]
        WantedBy=multi-user.target
        """
    )
    return (
        "set -e\n"
        "echo boot >>/var/lib/burla/boots\n"
        "apt-get update\n"
        "apt-get install -y python3-venv\n"
        "mkdir -p /opt/echo\n"
        """echo 'GREETING="hello there"' >/etc/burla/echo.env\n"""
        f"cat >/opt/echo/server.py <<'EOF'\n{SERVER}EOF\n"
        f"cat >/etc/systemd/system/echo.service <<'EOF'\n{unit}EOF\n"
        "systemctl daemon-reload\n"
        "systemctl enable --now echo\n"
        "systemctl is-active echo >/var/lib/burla/state\n"
    )


def answer(port: int, timeout_s: float = 10) -> list[str]:
    """The echo service's answer, once it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with httpx.Client(trust_env=False) as client:
                return client.get(f"http://127.0.0.1:{port}/", timeout=2).text.split(" | ")
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"nothing answers on port {port}"
            time.sleep(0.02)


def test_a_fake_debian_vm_runs_its_systemd_unit_through_reset_until_deleted(
    api: FakeComputeApi, google: Clients
) -> None:
    api.add_image(IMAGE, FakeImage(environment={"IMAGE_MARK": "debian-fake"}))
    port = free_port()
    boot_vm(
        google,
        "vm-debian",
        script=echo_script(port),
        image=f"global/images/{IMAGE.rsplit('/', 1)[1]}",
    )
    pid, greeting, mark, cwd = answer(port)
    assert (greeting, mark, cwd) == ("hello there", "debian-fake", "/opt/echo")
    directory = api.directory(PROJECT, ZONE, "vm-debian")
    disk = directory / "root"
    eventually(lambda: (disk / "var/lib/burla/state").read_text() == "active\n")
    assert (directory / "apt-get.log").read_text() == "update\ninstall -y python3-venv\n"
    assert (disk / "etc/systemd/system/multi-user.target.wants/echo.service").is_symlink()
    assert not Path("/etc/systemd/system/echo.service").exists()  # the host's are untouched
    assert not Path("/opt/echo").exists()
    assert "Started echo.service" in (directory / "units/echo.log").read_text()

    os.kill(int(pid), signal.SIGKILL)  # Restart=always brings it back
    eventually(lambda: answer(port)[0] != pid)
    restarted = answer(port)[0]
    group = api.pid(PROJECT, ZONE, "vm-debian")
    assert group is not None
    assert int(restarted) in group_members(group)

    google.done_in_zone(
        google.instances.reset_unary(project=PROJECT, zone=ZONE, instance="vm-debian")
    )
    assert not group_members(group)  # the first boot's processes, unit included, are gone
    rebooted = answer(port)[0]
    assert rebooted not in (pid, restarted)
    assert (disk / "var/lib/burla/boots").read_text() == "boot\nboot\n"  # the disk stayed

    group = api.pid(PROJECT, ZONE, "vm-debian")
    assert group is not None
    google.done_in_zone(
        google.instances.delete_unary(project=PROJECT, zone=ZONE, instance="vm-debian")
    )
    assert not group_members(group)
    assert not alive(int(rebooted))
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port)):
        pass


def test_the_fake_systemctl_answers_as_systemctl_does(api: FakeComputeApi, google: Clients) -> None:
    api.add_image(IMAGE, FakeImage())
    script = textwrap.dedent(
        """\
        exec >/var/lib/burla/results 2>&1
        systemctl start missing; echo "start missing: $?"
        systemctl is-active missing; echo "is-active missing: $?"
        printf '[Service]\\nExecStartPre=/bin/true\\nExecStart=/bin/true\\n' \\
          >/etc/systemd/system/pre.service
        systemctl start pre; echo "start pre: $?"
        printf '[Install]\\nWantedBy=a.target\\n' >>/etc/systemd/system/pre.service
        systemctl enable pre; echo "enable pre: $?"
        printf '[Service]\\nExecStart=/bin/sh -c "exit 3"\\n' >/etc/systemd/system/fails.service
        systemctl enable fails; echo "enable fails: $?"
        systemctl start fails; echo "start fails: $?"
        sleep 0.5
        systemctl is-active fails; echo "is-active fails: $?"
        printf '[Service]\\nExecStart=/bin/sleep 60\\n' >/etc/systemd/system/fails.service
        systemctl start fails; echo "start changed: $?"
        systemctl daemon-reload
        systemctl restart fails; echo "restart reloaded: $?"
        systemctl is-active fails; echo "is-active reloaded: $?"
        systemctl stop fails; echo "stop: $?"
        systemctl is-active --quiet fails; echo "is-active quiet: $?"
        systemctl frobnicate fails; echo "frobnicate: $?"
        echo finished
        """
    )
    boot_vm(google, "vm-debian", script=script, image=IMAGE)
    results = api.directory(PROJECT, ZONE, "vm-debian") / "root/var/lib/burla/results"
    eventually(lambda: results.exists() and "finished" in results.read_text(), timeout_s=15)
    text = results.read_text()
    for line in [
        "Failed to start missing.service: Unit missing.service not found.",
        "start missing: 5",
        "inactive\nis-active missing: 3",
        "ExecStartPre= is not modelled",
        "start pre: 1",
        "enable pre: 0",
        "The unit files have no installation config",
        "enable fails: 0",
        "start fails: 0",
        "failed\nis-active fails: 3",
        "changed on disk. Run 'systemctl daemon-reload' to reload units.",
        "restart reloaded: 0",
        "active\nis-active reloaded: 0",
        "stop: 0",
        "is-active quiet: 3",
        "Unknown command verb 'frobnicate'.\nfrobnicate: 1",
    ]:
        assert line in text, text
