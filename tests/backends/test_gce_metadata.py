"""A VM's metadata server, as burla's nodes read it, on the fake Compute API's VMs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from burla.backends.gcp.metadata import access_token, internal_ip, metadata_url
from burla.backends.gcp.registry_logins import credentials_login, vm_login
from burla.core.errors import BackendError
from burla.services.node_service.__main__ import NodeSettings, advertised_host
from tests.backends.gce import PROJECT, ZONE
from tests.e2e_gcp.conftest import write_key_file
from tests.fakes.compute_api import ACCESS_TOKEN, TOKEN_LIFE_S, FakeComputeApi

pytestmark = pytest.mark.integration


@pytest.fixture
def vm_env(compute_api: FakeComputeApi) -> Iterator[dict[str, str]]:
    """The environment a VM of the fake runs in: its metadata server's address."""
    body = {
        "name": "vm-meta",
        "machineType": f"zones/{ZONE}/machineTypes/n2-standard-4",
        "disks": [{"boot": True}],
        "networkInterfaces": [{"network": "global/networks/default"}],
    }
    instances = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances"
    try:
        status, _ = compute_api.handle("POST", instances, {}, json.dumps(body).encode())
        assert status == 200
        yield {"GCE_METADATA_HOST": f"127.0.0.1:{compute_api.port}/vms/{PROJECT}/{ZONE}/vm-meta"}
    finally:
        compute_api.reset()


def test_a_node_reads_its_internal_ip(vm_env: dict[str, str]) -> None:
    assert internal_ip(vm_env) == "127.0.0.1"


def test_a_node_on_compute_engine_tells_main_service_its_internal_ip(
    vm_env: dict[str, str], compute_api: FakeComputeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compute_api, "internal_ip", "127.0.0.2")  # not the bound host
    monkeypatch.setenv("GCE_METADATA_HOST", vm_env["GCE_METADATA_HOST"])
    node = NodeSettings.model_validate(
        {
            "node_id": "vm-meta",
            "node_type": {"name": "n2-standard-4", "cpus": 4, "ram_gb": 16},
            "main_url": "http://127.0.0.1:9",
            "node_dir": "/nonexistent",
            "store_url": "firestore://p/ns",
            "blobs_url": "gs://b/ns",
            "secret": "00",
            "local_dir": "/nonexistent",
            "host": "0.0.0.0",
            "address_from": "gce-metadata",
        }
    )
    assert advertised_host(node) == "127.0.0.2"
    assert advertised_host(node.model_copy(update={"advertise_host": "127.0.0.3"})) == "127.0.0.3"


def test_a_node_logs_in_to_the_registry_with_its_vms_token(vm_env: dict[str, str]) -> None:
    assert access_token(vm_env) == (ACCESS_TOKEN, TOKEN_LIFE_S)
    assert vm_login(vm_env)() == {"username": "oauth2accesstoken", "password": ACCESS_TOKEN}


def test_main_service_logs_in_with_its_service_account_key(
    compute_api: FakeComputeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = "burla-main@burla-test.iam.gserviceaccount.com"
    key_file = tmp_path / "key.json"
    public_key = write_key_file(key_file, email, f"{compute_api.endpoint}/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    with pytest.raises(BackendError, match="no access token for the cluster's registry"):
        credentials_login()()  # the token endpoint does not know this key yet
    compute_api.service_account_keys[email] = public_key
    try:
        assert credentials_login()()["password"] == ACCESS_TOKEN
    finally:
        del compute_api.service_account_keys[email]


def test_googles_own_client_reads_the_same_values(vm_env: dict[str, str]) -> None:
    """google-auth's metadata client (which checks the server's answers itself) agrees."""
    script = (
        "import google.auth.transport.requests as transport\n"
        "from google.auth.compute_engine import _metadata\n"
        "print(_metadata.get(transport.Request(), 'instance/network-interfaces/0/ip'))\n"
        "print(_metadata.get_service_account_token(transport.Request())[0])\n"
    )
    read = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **vm_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert read.stdout.split() == ["127.0.0.1", ACCESS_TOKEN]


def test_the_server_refuses_requests_that_are_not_a_vms_own(vm_env: dict[str, str]) -> None:
    url = metadata_url("instance/network-interfaces/0/ip", vm_env)
    with httpx.Client(trust_env=False) as client:
        assert client.get(url).status_code == 403  # no Metadata-Flavor: Google
        forwarded = {"Metadata-Flavor": "Google", "X-Forwarded-For": "127.0.0.2"}
        assert client.get(url, headers=forwarded).status_code == 403


class NotMetadata(BaseHTTPRequestHandler):
    """A web server that answers anything, but is no metadata server."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "9")
        self.end_headers()
        self.wfile.write(b"127.0.0.1")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotMetadata)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_is_no_metadata_server_is_not_believed(impostor: str) -> None:
    with pytest.raises(BackendError, match="not as a Compute Engine metadata server"):
        internal_ip({"GCE_METADATA_HOST": impostor})


def test_no_metadata_server_is_a_clear_error_after_a_while() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(BackendError, match=r"did not answer .* is this a Compute Engine VM"):
        internal_ip({"GCE_METADATA_HOST": f"127.0.0.1:{port}"}, ask_for_s=0.5)
