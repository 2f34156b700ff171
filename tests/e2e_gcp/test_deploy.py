"""`burla deploy` and `burla destroy` from a project with nothing in it, on stand-ins of
every Google API they call: Service Usage, Resource Manager, IAM, Firestore Admin,
Artifact Registry and Compute Engine (tests/fakes), the Firestore emulator and the
storage emulator, each talked to by Google's own client library.

main_service's VM and the nodes boot a fake Debian image: their startup scripts run
for real in a mount namespace of their own, fetch burla's wheel and constraints from the
bucket with the VM's token, install them with pip into /opt/burla (the packages burla
needs come from this test run's environment, offline), and main_service runs as the
systemd unit deploy wrote (a stand-in of systemctl runs its ExecStart). So the cluster
that answers is the wheel deploy built, not this checkout. Clients reach it over HTTPS,
pinned to the certificate main_service made on its VM.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import site
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from burla import remote_parallel_map
from burla.client.login import Login
from burla.client.map import Session
from burla.core.settings import settings_from
from burla.release import build_id
from tests.components.firestore import FirestoreEmulator
from tests.components.gcs import GcsEmulator
from tests.e2e.test_cli import burla, burla_json
from tests.e2e_gcp.conftest import PROJECT, free_port, write_service_account_key
from tests.fakes.compute_api import FakeComputeApi
from tests.fakes.google_apis.artifact_registry import FakeArtifactRegistry
from tests.fakes.google_apis.firestore_admin import FakeFirestoreAdmin
from tests.fakes.google_apis.resource_manager import FakeResourceManager
from tests.fakes.google_apis.service_usage import FakeServiceUsage
from tests.fakes.iam_api import FakeIamApi
from tests.fakes.vm_image import FakeImage

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REGION = "us-central1"
ZONE = f"{REGION}-a"
FAKE_DEBIAN = f"projects/{PROJECT}/global/images/debian-12-fake"
NO_METADATA_PROBE = {"NO_GCE_CHECK": "true", "GCE_METADATA_IP": "127.0.0.1:9"}
"""google-auth probes for Compute Engine at GCE_METADATA_IP: keep that on loopback."""


@dataclass
class Google:
    """The stand-ins, wired together as Google's services are."""

    compute: FakeComputeApi
    services: FakeServiceUsage
    projects: FakeResourceManager
    databases: FakeFirestoreAdmin
    registries: FakeArtifactRegistry
    iam: FakeIamApi
    firestore: FirestoreEmulator
    gcs: GcsEmulator
    endpoints: Path
    signer: Path
    config: Path

    def deploy_args(self, cluster: str, port: int, *more: str) -> list[str]:
        vm_env = {
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "STORAGE_EMULATOR_HOST": self.gcs.url,
            "BURLA_COMPUTE_ENDPOINT": self.compute.endpoint,
            "BURLA_SIGNER": str(self.signer),
            "BURLA_NODE_ENV": " ".join(f"{k}={v}" for k, v in NO_METADATA_PROBE.items()),
            **NO_METADATA_PROBE,
        }
        return [
            "deploy",
            f"--project={PROJECT}",
            f"--region={REGION}",
            f"--cluster={cluster}",
            "--containers=process",
            "--machine-type=n2-standard-2",
            "--allow=127.0.0.1/32",
            f"--port={port}",
            f"--source-image={FAKE_DEBIAN}",
            f"--endpoints={self.endpoints}",
            "--wait-s=300",
            *(f"--vm-env={name}={value}" for name, value in vm_env.items()),
            *more,
        ]

    def destroy_args(self, cluster: str, *more: str) -> list[str]:
        return [
            "destroy",
            f"--project={PROJECT}",
            f"--region={REGION}",
            f"--cluster={cluster}",
            f"--endpoints={self.endpoints}",
            *more,
        ]

    def deploy(self, capsys: pytest.CaptureFixture[str], cluster: str, port: int) -> str:
        """Deploy; what it printed."""
        code, out, err = burla(capsys, *self.deploy_args(cluster, port))
        assert code == 0, out + err
        return out

    def destroy(self, capsys: pytest.CaptureFixture[str], cluster: str) -> str:
        code, out, err = burla(capsys, *self.destroy_args(cluster, "--yes"))
        assert code == 0, out + err
        return out

    def mutations(self) -> list[str]:
        """The calls so far that change something, on every stand-in."""
        rest = (self.services, self.projects, self.databases, self.registries)
        changes = [
            request.method_id or request.path
            for stand_in in rest
            for request in stand_in.requests
            if request.method != "GET"
            and not (request.method_id or "").startswith(("operations", "projects.getIamPolicy"))
        ]
        changes += [
            call.method
            for call in self.iam.requests
            if call.method not in ("GetServiceAccount", "GetIamPolicy", "ListServiceAccounts")
        ]
        changes += [
            f"{method} {path}"
            for method, path in self.compute.requests
            if method != "GET" and not path.endswith("/wait") and "/vms/" not in path
        ]
        return changes

    def leftovers(self, cluster: str) -> list[str]:
        """What of the cluster is still there, read through Google's clients."""
        from google.cloud import firestore

        from burla.core.errors import NotFoundError
        from burla.deploy.google import GoogleClients, call
        from burla.deploy.options import DeployOptions, GoogleEndpoints

        options = DeployOptions(project=PROJECT, region=REGION, cluster=cluster)
        clients = GoogleClients(
            PROJECT, GoogleEndpoints.model_validate_json(self.endpoints.read_text())
        )
        found = [f"VM {name}" for name in self.vms(cluster)]
        for rule in (f"{cluster}-main", f"{cluster}-internal"):
            try:
                call("read", clients.firewalls.get, project=PROJECT, firewall=rule)
                found.append(f"firewall rule {rule}")
            except NotFoundError:
                pass
        repository = f"projects/{PROJECT}/locations/{REGION}/repositories/{cluster}"
        try:
            call("read", clients.repositories.get_repository, name=repository)
            found.append("registry")
        except NotFoundError:
            pass
        if clients.storage.lookup_bucket(options.bucket) is not None:
            found.append(f"bucket {options.bucket}")
        if self.iam.exists(options.account_email):
            found.append("service account")
        member = f"serviceAccount:{options.account_email}"
        policy = self.projects.policy(PROJECT)
        if any(member in binding.get("members", []) for binding in policy.get("bindings", [])):
            found.append("project roles")
        database = firestore.Client(project=PROJECT)
        if list(database.collection("burla").document(cluster).collections()):
            found.append("Firestore documents")
        return found

    def vms(self, cluster: str) -> set[str]:
        code, reply = self.compute.handle(
            "GET", f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances", {}, b""
        )
        assert code == 200, reply
        return {
            vm["name"]
            for vm in reply.get("items", [])
            if vm.get("labels", {}).get("burla-cluster") == cluster
        }


@pytest.fixture
def google(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    compute_api: FakeComputeApi,
    service_usage_api: FakeServiceUsage,
    resource_manager_api: FakeResourceManager,
    firestore_admin_api: FakeFirestoreAdmin,
    artifact_registry_api: FakeArtifactRegistry,
    iam_api: FakeIamApi,
    firestore_emulator: FirestoreEmulator,
    gcs_emulator: GcsEmulator,
) -> Iterator[Google]:
    offline = {"PYTHONPATH": site.getsitepackages()[0], "PIP_NO_INDEX": "1"}
    compute_api.add_image(FAKE_DEBIAN, FakeImage(offline))
    resource_manager_api.service_account_exists = iam_api.exists
    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(
        json.dumps(
            {
                "compute": compute_api.endpoint,
                "service_usage": service_usage_api.endpoint,
                "resource_manager": resource_manager_api.endpoint,
                "firestore_admin": firestore_admin_api.endpoint,
                "artifact_registry": artifact_registry_api.endpoint,
                "iam": iam_api.target,
            }
        )
    )
    signer = tmp_path / "signer.json"
    write_service_account_key(signer)
    config = tmp_path / "config.toml"
    for name in [name for name in os.environ if name.startswith("BURLA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BURLA_CONFIG", str(config))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator.host)
    for name, value in NO_METADATA_PROBE.items():
        monkeypatch.setenv(name, value)
    try:
        yield Google(
            compute_api,
            service_usage_api,
            resource_manager_api,
            firestore_admin_api,
            artifact_registry_api,
            iam_api,
            firestore_emulator,
            gcs_emulator,
            endpoints,
            signer,
            config,
        )
    finally:
        Session.close_all()
        compute_api.reset()
        for stand_in in (
            service_usage_api,
            resource_manager_api,
            firestore_admin_api,
            artifact_registry_api,
            iam_api,
        ):
            stand_in.reset()


def double(x: int) -> int:
    return 2 * x


def test_deploy_from_nothing_runs_a_job_over_https_then_destroy_leaves_nothing(
    google: Google, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = f"d{secrets.token_hex(3)}"
    # Google's documented transient errors, once each on the way: deploy rides over them.
    google.services.refuse_next("UNAVAILABLE", method_id="services.batchEnable")
    google.projects.refuse_next("RESOURCE_EXHAUSTED", method_id="projects.setIamPolicy")
    google.iam.fail_next(1, method="CreateServiceAccount")
    google.compute.refuse_next("compute.firewalls.insert", code=429)
    google.compute.refuse_next("compute.instances.insert", code=403)
    out = google.deploy(capsys, cluster, free_port())
    assert "+ service account" in out
    assert "+ main_service VM" in out
    settings = settings_from({}, google.config.read_text())
    assert settings.backend == "gcp"
    assert settings.main_url is not None
    assert settings.main_url.startswith("https://127.0.0.1:")
    assert settings.main_cert_sha256 is not None
    assert len(settings.main_cert_sha256) == 64

    assert remote_parallel_map(double, [1, 2, 3], spinner=False) == [2, 4, 6]
    status = burla_json(capsys, "cluster", "status")
    assert {node["type"] for node in status["nodes"]} == {"n2-standard-2"}  # a standby node
    assert status["cost_per_hour_usd"] > 0  # at list price, in the deployed region
    assert google.vms(cluster) >= {f"{cluster}-main"}

    # Every machine runs the wheel deploy built: same build as this checkout, installed
    # in the VM's own /opt/burla, never this checkout.
    main_dir = google.compute.directory(PROJECT, ZONE, f"{cluster}-main")
    assert (main_dir / "root" / "opt" / "burla" / "burla-build").read_text().strip() == build_id()

    burla(capsys, "users", "add", "bob")
    login_string = burla_json(capsys, "tokens", "create", "bob")["login"]
    monkeypatch.setenv("BURLA_CONFIG", str(google.config.with_name("bob.toml")))
    wrong = Login.decode(login_string)
    wrong = Login(wrong.url, wrong.token, "0" * 64).encode()
    code, _, err = burla(capsys, "login", wrong)
    assert code == 2
    assert "showed a certificate with SHA-256 fingerprint" in err
    assert "Nothing was sent to it" in err
    assert not google.config.with_name("bob.toml").exists()
    assert burla(capsys, "login", login_string)[0] == 0
    assert burla_json(capsys, "whoami")["user"] == "bob"
    assert remote_parallel_map(double, [5], spinner=False) == [10]
    Session.close_all()

    out = google.destroy(capsys, cluster)
    assert "deleted service account" in out
    assert google.leftovers(cluster) == []


def test_a_second_deploy_changes_nothing(
    google: Google, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster, port = f"t{secrets.token_hex(3)}", free_port()
    first = google.deploy(capsys, cluster, port)
    assert "(0 resource" not in first
    made = len(google.mutations())
    again = google.deploy(capsys, cluster, port)
    plan = [line for line in again.splitlines() if line.startswith("  ") and ": " in line]
    assert len(plan) == 12
    assert all(line.lstrip().startswith("=") for line in plan), again
    assert "nothing to change" in again
    assert google.mutations()[made:] == []

    # A reboot: systemd starts main_service again, with the certificate it had.
    pinned = settings_from({}, google.config.read_text()).main_cert_sha256
    reset = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances/{cluster}-main/reset"
    assert google.compute.handle("POST", reset, {}, b"")[0] == 200
    deadline = time.monotonic() + 120
    while burla(capsys, "whoami")[0] != 0:
        assert time.monotonic() < deadline, "main_service did not come back after a reboot"
        time.sleep(0.5)
    assert burla_json(capsys, "whoami")["cert_sha256"] == pinned
    assert remote_parallel_map(double, [4], spinner=False) == [8]
    google.destroy(capsys, cluster)
    assert google.leftovers(cluster) == []


def test_a_deploy_cut_short_completes_on_the_next_run(
    google: Google, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, port = f"c{secrets.token_hex(3)}", free_port()
    refusal = "Permission 'artifactregistry.repositories.create' denied (injected)"
    google.registries.refuse_next(
        "PERMISSION_DENIED", message=refusal, method_id="repositories.create"
    )
    code, out, err = burla(capsys, *google.deploy_args(cluster, port))
    assert code == 2, out + err
    assert "could not create repository" in err
    assert google.vms(cluster) == set()  # it stopped at the registry, before the VM

    out = google.deploy(capsys, cluster, port)
    assert "= service account" in out
    assert "+ registry" in out
    assert "+ main_service VM" in out
    assert google.vms(cluster) >= {f"{cluster}-main"}

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))  # destroy asks before the data
    code, out, err = burla(capsys, *google.destroy_args(cluster))
    assert code == 0, out + err
    assert "delete the cluster's data" in out
    assert "kept the cluster's data" in out
    assert set(google.leftovers(cluster)) == {f"bucket {PROJECT}-{cluster}", "Firestore documents"}
    google.destroy(capsys, cluster)
    assert google.leftovers(cluster) == []


def test_a_dry_run_shows_the_plan_and_changes_nothing(
    google: Google, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = f"p{secrets.token_hex(3)}"
    code, out, err = burla(capsys, *google.deploy_args(cluster, free_port(), "--dry-run"))
    assert code == 0, out + err
    assert "+ APIs" in out
    assert "+ main_service VM" in out
    assert "(after compute.googleapis.com)" in out  # not read: its API is not enabled yet
    assert "dry run: nothing changed" in out
    assert google.mutations() == []
    assert not google.config.exists()
