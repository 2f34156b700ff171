"""This machine's cluster: its standby node, the image its workers run in, what nodes boot with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from burla.backends.local.envs import LOCAL_DEFAULT_IMAGE, ensure_worker_env
from burla.services.cluster_keys import node_secret
from burla.services.main_service.local_start import Containers

if TYPE_CHECKING:
    from burla.core.models import ClusterConfig

MAX_LOCAL_NODES = 4
FIRST_NODE = "node-000001"


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
    # Loaded here: main_service's command line starts its first node's process before
    # it loads the models.
    from burla.core.environment import RUNNING_PYTHON
    from burla.core.models import (
        ClusterConfig,
        ContainerSpec,
        NodeType,
        StandbyDefinition,
        StandbyGroup,
    )

    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    node_type = NodeType(name="local", cpus=cpus, ram_gb=max(round(memory_gb, 1), 4.0 * cpus))
    standby = StandbyDefinition(
        nodes=(StandbyGroup(node_type=node_type, count=1),),
        # Workers run this interpreter's Python: in a venv of it, or in a Docker image
        # that must have the same (the runtime mounts this burla and its dependencies).
        containers=(ContainerSpec(image=image, python_version=RUNNING_PYTHON, default=True),),
    )
    return ClusterConfig(
        standby=standby,
        max_nodes=MAX_LOCAL_NODES,
        max_nodes_per_job=1,
        release="recycle",
        refill_standby=False,
    )


def local_boot_env(root: Path, token: str, containers: Containers) -> dict[str, str]:
    """A node's environment: the cluster's Store and blob store in `root`, its secret;
    for workers that are processes, the python of their environment (built here once,
    rather than by every node as it boots)."""
    env = {
        "BURLA_STORE_URL": f"sqlite://{root / 'store.db'}",
        "BURLA_BLOBS_URL": f"file://{root / 'blobs'}",
        "BURLA_SECRET": node_secret(token),
        "BURLA_LOCAL_DIR": str(root),
        "BURLA_CONTAINERS": containers,
    }
    if containers == "process":
        env["BURLA_WORKER_PYTHON"] = str(ensure_worker_env(root))
    return env
