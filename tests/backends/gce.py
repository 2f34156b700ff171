"""GceComputeProviders on the fake Compute REST API of tests/fakes, whose VMs run the
provider's startup script on this machine; the script starts tests/backends/fake_node.py
as the node."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from google.auth.credentials import AnonymousCredentials

from burla.backends.gcp.compute import GceComputeProvider
from burla.backends.gcp.gce_settings import GceSettings
from burla.core.models import NodeType
from burla.core.protocols import BootSpec
from tests.fakes.compute_api import FakeComputeApi

PROJECT = "burla-test"
ZONE = "us-central1-a"
CLUSTER = "gce-test"
IMAGE = "projects/debian-cloud/global/images/family/debian-12"
FAKE_NODE = Path(__file__).with_name("fake_node.py")
NODE_TYPE = NodeType(name="n2-standard-4", cpus=4, ram_gb=16)


def settings(**changes: Any) -> GceSettings:
    fields: dict[str, Any] = {
        "project": PROJECT,
        "zone": ZONE,
        "cluster": CLUSTER,
        "source_image": IMAGE,
        "install_command": None,
        "node_command": (sys.executable, str(FAKE_NODE)),
        "node_dir": "node",  # inside each VM's own directory
        "first_poll_s": 0.005,
        "max_poll_s": 0.05,
        "operation_timeout_s": 30,
    }
    return GceSettings(**(fields | changes))


def boot(node_id: str, **env: str) -> BootSpec:
    return BootSpec(node_id, NODE_TYPE, main_url="http://127.0.0.1:1", env=env)


def provider_on(api: FakeComputeApi, **changes: Any) -> GceComputeProvider:
    return GceComputeProvider(
        settings(**changes),
        client_options={"api_endpoint": api.endpoint},
        credentials=AnonymousCredentials(),
    )


def vm_name(node_id: str, cluster: str = CLUSTER) -> str:
    return f"{cluster}-{node_id}"
