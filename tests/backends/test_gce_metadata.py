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

import httpx
import pytest

from burla.backends.gcp.metadata import internal_ip, metadata_url
from burla.core.errors import BackendError
from burla.services.node_service.__main__ import NodeSettings, advertised_host
from tests.backends.gce import PROJECT, ZONE
from tests.fakes.compute_api import FakeComputeApi

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


def test_googles_own_client_reads_the_same_value(vm_env: dict[str, str]) -> None:
    """google-auth's metadata client (which checks the server's answers itself) agrees."""
    script = (
        "import google.auth.transport.requests as transport\n"
        "from google.auth.compute_engine import _metadata\n"
        "print(_metadata.get(transport.Request(), 'instance/network-interfaces/0/ip'))\n"
    )
    read = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **vm_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert read.stdout.strip() == "127.0.0.1"


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
