"""What the local backend's node processes and worker processes are started with in tests."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from burla.backends.local.compute import LocalComputeProvider
from burla.core.models import ContainerSpec, NodeType
from burla.core.protocols import BootSpec

FAKE_NODE = Path(__file__).with_name("fake_node.py")
NODE_COMMAND = (sys.executable, str(FAKE_NODE))
NODE_TYPE = NodeType(name="local-2", cpus=2, ram_gb=4)
IMAGE = "local-python"
SLEEPER = ContainerSpec(image=IMAGE, entrypoint=("python", "-c", "import time; time.sleep(600)"))
AVAILABLE = sorted(os.sched_getaffinity(0))


def boot(node_id: str, **env: str) -> BootSpec:
    return BootSpec(node_id, NODE_TYPE, main_url="http://127.0.0.1:1", env=env)


def program(source: str) -> ContainerSpec:
    """A container whose entrypoint runs `source` in the image's python."""
    return ContainerSpec(image=IMAGE, entrypoint=("python", "-c", source))


def node_pid(compute: LocalComputeProvider, node_id: str) -> int:
    pid: int = json.loads((compute.directory(node_id) / "node.json").read_text())["pid"]
    return pid
