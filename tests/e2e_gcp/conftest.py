"""A cloud cluster on this machine for the end-to-end tests of backend "gcp".

main_service runs as `python -m burla.services.main_service cloud`, in a process of its
own, with the Google Cloud backends: FirestoreStore on the Firestore emulator,
GcsBlobStore on gcp-storage-emulator (URLs signed with a throwaway service account key)
and GceComputeProvider on the fake Compute Engine API, whose VMs run their startup
scripts here: every node is a real node_service process on 127.0.0.1 with its workers
as processes. Nodes reach the emulators through the variables main_service passes on.

Nothing leaves 127.0.0.1: the Google clients find no credentials to look up, and the
metadata server they might probe is pointed at a closed loopback port.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from burla.client.map import Session
from burla.client.pinning import tls_context
from burla.services.tls import CERT_FILE, certificate_fingerprint
from tests.components.docker import NodesEngine
from tests.components.firestore import FirestoreEmulator
from tests.components.gcs import GcsEmulator
from tests.components.registry import Registry
from tests.fakes.compute_api import FakeComputeApi

PROJECT = "burla-test"
ZONE = "us-central1-a"
MACHINE_TYPE = "n2-standard-2"
SIGNER_EMAIL = "burla-e2e-signer@burla-test.iam.gserviceaccount.com"
INSTANCES = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0

NO_METADATA_SERVER = {
    # google-auth skips its Compute Engine probe, and any metadata request stays local.
    "NO_GCE_CHECK": "true",
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
}


@dataclass
class GcpCluster:
    """main_service of a cloud cluster, run as `python -m burla.services.main_service cloud`."""

    command: list[str]
    env: dict[str, str]
    url: str
    token_file: Path
    cluster: str
    bucket: str
    storage_url: str
    """The storage emulator, where signed URLs point."""
    api: FakeComputeApi
    public_key: rsa.RSAPublicKey
    """Checks the signatures of the URLs main_service and its nodes sign."""
    log: Path
    tls_dir: Path | None = None
    """Where main_service keeps its certificate, when it serves HTTPS."""
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    """time.monotonic() when main_service was last started."""

    @property
    def token(self) -> str:
        return self.token_file.read_text().strip()

    @property
    def cert_sha256(self) -> str | None:
        """The fingerprint clients pin, when main_service serves HTTPS."""
        if self.tls_dir is None:
            return None
        return certificate_fingerprint(self.tls_dir / CERT_FILE)

    def start(self) -> None:
        """Start main_service; return once it answers (its standby node may still boot)."""
        self.started = time.monotonic()
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(httpx.TransportError, FileNotFoundError, ConnectionError):
                self.get("/health")
                return
            time.sleep(0.05)
        pytest.fail(f"main_service did not answer within {READY_TIMEOUT_S} s")

    def stop(self) -> None:
        """SIGTERM: main_service deletes its VMs and exits. SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash: main_service leaves its VMs behind."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()

    def get(self, path: str) -> Any:
        headers = {"authorization": f"Bearer {self.token}"}
        verify: ssl.SSLContext | bool = True
        if self.cert_sha256 is not None:
            address = urlsplit(self.url)
            verify = tls_context(address.hostname or "", address.port or 443, self.cert_sha256)
        response = httpx.get(
            self.url + path, headers=headers, timeout=10, trust_env=False, verify=verify
        )
        response.raise_for_status()
        return response.json()

    def status(self) -> dict[str, Any]:
        """main_service's view of the cluster: nodes, ready count, jobs."""
        status: dict[str, Any] = self.get("/cluster")
        return status

    def instances(self) -> dict[str, str]:
        """The cluster's VMs in the fake Compute API: name -> status."""
        return instances_of(self.api, self.cluster)

    def wait_for_instances(self, expected: dict[str, str], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while (found := self.instances()) != expected:
            assert time.monotonic() < deadline, f"VMs {found}, not {expected}"
            time.sleep(0.05)

    def wait_for_standby(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        """Wait until one node is ready and no other exists: the standby set, whole."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            status = self.status()
            if status["ready"] == 1 and len(status["nodes"]) == 1:
                return status
            if time.monotonic() > deadline:
                pytest.fail(f"the standby node was not ready within {timeout_s} s: {status}")
            time.sleep(0.05)

    def check_alive(self) -> None:
        assert self.process is not None, "main_service is not started"
        if self.process.poll() is not None:
            pytest.fail(
                f"main_service exited with {self.process.returncode}:\n"
                f"{self.log.read_text(errors='replace')}"
            )


def write_service_account_key(path: Path) -> rsa.RSAPublicKey:
    """A service account key file with a key made here: it signs URLs and nothing else."""
    return write_key_file(path, SIGNER_EMAIL, "http://127.0.0.1:9/token")  # fetches no token


def write_key_file(path: Path, email: str, token_uri: str) -> rsa.RSAPublicKey:
    """A service account key file of `email` with a key made here, whose access tokens
    come from `token_uri`; its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "client_email": email,
        "client_id": "1",
        "private_key_id": "burla-e2e",
        "private_key": pem.decode(),
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    return key.public_key()


def cloud_environment(
    firestore: FirestoreEmulator, gcs: GcsEmulator, cluster: str
) -> dict[str, str]:
    """main_service's environment: the emulators, this cluster's [gcp] settings, and no
    settings of whoever runs the tests."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BURLA_")}
    env.update(NO_METADATA_SERVER)
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    env.update(
        FIRESTORE_EMULATOR_HOST=firestore.host,
        STORAGE_EMULATOR_HOST=gcs.url,
        BURLA_CONFIG=os.devnull,
        BURLA_GCP_PROJECT=PROJECT,
        BURLA_GCP_ZONE=ZONE,
        BURLA_GCP_MACHINE_TYPE=MACHINE_TYPE,
        BURLA_GCP_STANDBY_NODES="1",
        BURLA_GCP_BUCKET=gcs.bucket,
        BURLA_GCP_CLUSTER=cluster,
        BURLA_GCP_CONTAINERS="process",
    )
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def gcp_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    firestore_emulator: FirestoreEmulator,
    gcs_emulator: GcsEmulator,
    compute_api: FakeComputeApi,
) -> Iterator[GcpCluster]:
    """A cluster whose workers are processes of its nodes (containers = "process")."""
    root = tmp_path_factory.mktemp("gcp-cluster")
    env = cloud_environment(firestore_emulator, gcs_emulator, f"e2e-{secrets.token_hex(3)}")
    with running_cluster(root, env, compute_api, gcs_emulator) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def gcp_spot_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    firestore_emulator: FirestoreEmulator,
    gcs_emulator: GcsEmulator,
    compute_api: FakeComputeApi,
) -> Iterator[GcpCluster]:
    """A cluster whose nodes are spot VMs ([gcp] spot = true), for one module."""
    root = tmp_path_factory.mktemp("gcp-spot-cluster")
    env = cloud_environment(firestore_emulator, gcs_emulator, f"e2s-{secrets.token_hex(3)}")
    env["BURLA_GCP_SPOT"] = "true"
    with running_cluster(root, env, compute_api, gcs_emulator) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def gcp_docker_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    firestore_emulator: FirestoreEmulator,
    gcs_emulator: GcsEmulator,
    compute_api: FakeComputeApi,
    google_registry: Registry,
    nodes_docker_engine: NodesEngine,
    default_image: str,
    trixie_image: str,
) -> Iterator[GcpCluster]:
    """A cluster whose workers are Docker containers (containers = "docker"), as on Google
    Cloud, for one module: main_service pushes the default images of Python 3.11 and 3.13
    from this machine's engine to the registry, and the nodes, all on an engine of their
    own that starts empty, pull them from there. The registry asks for a login as Artifact
    Registry does: main_service's access token comes from its service account key
    (through the fake's token endpoint), the nodes' from their VM's metadata server."""
    root = tmp_path_factory.mktemp("gcp-docker-cluster")
    email = "burla-main@burla-test.iam.gserviceaccount.com"
    key_file = root / "main-service-account.json"
    compute_api.service_account_keys[email] = write_key_file(
        key_file, email, f"{compute_api.endpoint}/token"
    )
    env = cloud_environment(firestore_emulator, gcs_emulator, f"e2d-{secrets.token_hex(3)}")
    env.update(
        GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
        BURLA_GCP_CONTAINERS="docker",
        BURLA_GCP_REGISTRY=google_registry.host,
        BURLA_GCP_PYTHONS="3.11,3.13",
    )
    node_env = {"DOCKER_HOST": nodes_docker_engine.url}
    try:
        with running_cluster(root, env, compute_api, gcs_emulator, node_env, tls=True) as cluster:
            yield cluster
    finally:
        del compute_api.service_account_keys[email]
        remove_guard_rules(compute_api.port)


def remove_guard_rules(port: int) -> None:
    """Take out the rules that kept workers from the fake's metadata server at `port`,
    which a node killed before it could take out its own left behind."""
    listed = subprocess.run(["iptables", "-w", "-S", "OUTPUT"], capture_output=True, text=True)
    for rule in listed.stdout.splitlines():
        if f"--dport {port} " in rule and "--comment burla-" in rule:
            subprocess.run(["iptables", "-w", "-D", *shlex.split(rule)[1:]], check=True)


@contextlib.contextmanager
def running_cluster(
    root: Path,
    env: dict[str, str],
    compute_api: FakeComputeApi,
    gcs_emulator: GcsEmulator,
    node_env: dict[str, str] | None = None,
    *,
    tls: bool = False,
) -> Iterator[GcpCluster]:
    """main_service of the cluster `env` names, started in `root`; its VMs get `node_env`
    too; with `tls` it serves HTTPS with a certificate of its own, which clients and nodes
    pin. All its VMs are gone at the end."""
    cluster = env["BURLA_GCP_CLUSTER"]
    public_key = write_service_account_key(root / "signer.json")
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "burla.services.main_service",
        "cloud",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--token-file={root / 'token'}",
        "--max-nodes=2",
        "--max-nodes-per-job=1",
        f"--signer={root / 'signer.json'}",
        f"--compute-endpoint={compute_api.endpoint}",
        "--install-command=none",
        f"--node-command={shlex.join([sys.executable, '-m', 'burla.services.node_service'])}",
        "--node-dir=node",  # inside each VM's own directory
        f"--node-local-dir={root / 'vm-local'}",  # the worker environment, built once
        "--node-host=127.0.0.1",
        # Nodes keep the fake's metadata server (GCE_METADATA_HOST), and probe no other.
        "--node-env=NO_GCE_CHECK=true",
        "--node-env=GCE_METADATA_IP=127.0.0.1:9",
        *(f"--node-env={name}={value}" for name, value in (node_env or {}).items()),
        *([f"--tls-dir={root / 'tls'}", "--tls-name=127.0.0.1"] if tls else []),
    ]
    running = GcpCluster(
        command=command,
        env=env,
        url=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
        token_file=root / "token",
        cluster=cluster,
        bucket=gcs_emulator.bucket,
        storage_url=gcs_emulator.url,
        api=compute_api,
        public_key=public_key,
        log=root / "main_service.log",
        tls_dir=root / "tls" if tls else None,
    )
    try:
        running.start()
        yield running
    finally:
        Session.close_all()
        running.stop()
        for name in instances_of(compute_api, cluster):  # only if main_service could not
            compute_api.handle("DELETE", f"{INSTANCES}/{name}", {}, b"")


def instances_of(api: FakeComputeApi, cluster: str) -> dict[str, str]:
    """A cluster's VMs in the fake Compute API: name -> status."""
    code, reply = api.handle("GET", INSTANCES, {}, b"")
    assert code == 200, reply
    return {
        vm["name"]: vm["status"]
        for vm in reply.get("items", [])
        if vm.get("labels", {}).get("burla-cluster") == cluster
    }


@pytest.fixture
def gcp(gcp_cluster: GcpCluster, monkeypatch: pytest.MonkeyPatch) -> GcpCluster:
    """The cluster, as a client's settings name it: BURLA_MAIN_URL and BURLA_TOKEN."""
    return use_cluster(gcp_cluster, monkeypatch)


@pytest.fixture
def gcp_spot(gcp_spot_cluster: GcpCluster, monkeypatch: pytest.MonkeyPatch) -> GcpCluster:
    """The cluster of spot VMs, as a client's settings name it."""
    return use_cluster(gcp_spot_cluster, monkeypatch)


@pytest.fixture
def gcp_docker(gcp_docker_cluster: GcpCluster, monkeypatch: pytest.MonkeyPatch) -> GcpCluster:
    """The cluster with Docker workers, as a client's settings name it."""
    return use_cluster(gcp_docker_cluster, monkeypatch)


def use_cluster(cluster: GcpCluster, monkeypatch: pytest.MonkeyPatch) -> GcpCluster:
    for name in [name for name in os.environ if name.startswith("BURLA_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BURLA_CONFIG", os.devnull)
    monkeypatch.setenv("BURLA_MAIN_URL", cluster.url)
    monkeypatch.setenv("BURLA_TOKEN", cluster.token)
    if cluster.cert_sha256 is not None:
        monkeypatch.setenv("BURLA_MAIN_CERT_SHA256", cluster.cert_sha256)
    cluster.check_alive()
    return cluster
