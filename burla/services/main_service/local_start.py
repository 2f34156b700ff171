"""The first moments of this machine's cluster, with light imports only: bind the
address, write the standby definition, boot the first node. The node then loads while
main_service loads its web stack, side by side.

The nodes' workers are processes ("process", the embedded local backend) or Docker
containers of burla's default image ("docker"); the nodes learn which from
BURLA_CONTAINERS in their boot environment."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from burla.backends.local.compute import LocalComputeProvider
from burla.backends.local.envs import LOCAL_DEFAULT_IMAGE
from burla.backends.local.store import SqliteStore
from burla.core.clock import WallClock
from burla.core.environment import RUNNING_PYTHON
from burla.core.models import (
    ClusterConfig,
    ContainerSpec,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.core.protocols import BootSpec
from burla.services.cluster_keys import node_secret
from burla.services.loopback import bind_loopback
from burla.services.store_keys import STANDBY_KEY

MAX_LOCAL_NODES = 4
FIRST_NODE = "node-000001"

Containers = Literal["process", "docker"]


def standby_image(containers: Containers) -> str:
    """The image every node keeps warm: the default worker environment as processes, or
    burla's default Docker image (built by `burla image build`)."""
    if containers == "docker":
        from burla.backends.docker.image import default_image_tag

        return default_image_tag()
    return LOCAL_DEFAULT_IMAGE


def local_config(cpus: int, image: str = LOCAL_DEFAULT_IMAGE) -> ClusterConfig:
    """One node with `cpus` CPUs, kept warm and reused job after job. A job that finds it
    busy (another client's, or one nested inside a worker) gets a node of its own, up to
    MAX_LOCAL_NODES; extra nodes go once they are idle.

    Memory is the machine's, shared with everything else on it; the node claims at least
    4 GB per CPU so that, as with multiprocessing, every CPU gets a worker by default.
    """
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    node_type = NodeType(name="local", cpus=cpus, ram_gb=max(round(memory_gb, 1), 4.0 * cpus))
    standby = StandbyDefinition(
        nodes=(StandbyGroup(node_type=node_type, count=1),),
        # Workers run this interpreter's Python: in a venv of it, or in a Docker image
        # that must have the same (the runtime mounts this burla and its dependencies).
        containers=(ContainerSpec(image=image, python_version=RUNNING_PYTHON),),
    )
    return ClusterConfig(
        standby=standby,
        max_nodes=MAX_LOCAL_NODES,
        max_nodes_per_job=1,
        release="recycle",
        refill_standby=False,
    )


@dataclass
class LocalStart:
    root: Path
    cpus: int
    config: ClusterConfig
    token: str
    sock: socket.socket
    url: str
    store: SqliteStore
    compute: LocalComputeProvider
    boot_env: dict[str, str]


async def begin(root: Path, cpus: int, containers: Containers = "process") -> LocalStart:
    token = secrets.token_hex(32)
    sock, address = bind_loopback()
    url = f"http://{address}"
    store = SqliteStore(root / "store.db", WallClock())
    config = local_config(cpus, standby_image(containers))
    await store.put(STANDBY_KEY, config.standby.model_dump(mode="json"))
    compute = LocalComputeProvider(root)
    for machine in await compute.list():  # left by a main_service that died
        await compute.delete(machine.node_id)
    boot_env = {
        "BURLA_STORE_URL": f"sqlite://{root / 'store.db'}",
        "BURLA_BLOBS_URL": f"file://{root / 'blobs'}",
        "BURLA_SECRET": node_secret(token),
        "BURLA_LOCAL_DIR": str(root),
        "BURLA_CONTAINERS": containers,
    }
    first_type = config.standby.nodes[0].node_type
    await compute.create(BootSpec(FIRST_NODE, first_type, url, boot_env))
    return LocalStart(root, cpus, config, token, sock, url, store, compute, boot_env)
