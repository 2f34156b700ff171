"""Which Docker containers belong to which of this machine's clusters.

Several clusters may share one Docker engine (a user's, a test session's), and each
numbers its nodes from node-000001, so a node's containers are labelled with its id
prefixed by a short hash of its cluster's directory. A cluster can then remove what its
own nodes left behind (a node killed before it could stop its containers) and nobody
else's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from burla.backends.docker.labels import NODE_LABEL
from burla.core.errors import BackendError

if TYPE_CHECKING:
    import docker


def cluster_prefix(cluster_dir: Path) -> str:
    """What the labels of every node of the cluster in `cluster_dir` start with."""
    digest = hashlib.sha256(str(Path(cluster_dir).resolve()).encode()).hexdigest()
    return f"c{digest[:12]}"


def cluster_node_id(cluster_dir: Path, node_id: str) -> str:
    """The id the node `node_id` of that cluster labels its Docker containers with."""
    return f"{cluster_prefix(cluster_dir)}-{node_id}"


def cluster_containers(client: docker.DockerClient, cluster_dir: Path) -> dict[str, str]:
    """The cluster's containers, running or not: Docker name -> container id."""
    prefix = f"{cluster_prefix(cluster_dir)}-"
    found = client.containers.list(all=True, sparse=True, filters={"label": NODE_LABEL})
    return {
        str(container.attrs["Names"][0]).lstrip("/"): str(container.attrs["Id"])
        for container in found
        if (container.attrs.get("Labels") or {}).get(NODE_LABEL, "").startswith(prefix)
    }


def remove_cluster_containers(client: docker.DockerClient, cluster_dir: Path) -> list[str]:
    """Remove the cluster's containers (its nodes must be gone); their Docker names."""
    import docker.errors

    found = cluster_containers(client, cluster_dir)
    for name, container_id in found.items():
        try:
            client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            continue  # removed meanwhile
        except docker.errors.APIError as error:
            if error.status_code != 409:  # 409: its removal is already under way
                raise BackendError(
                    f"Docker could not remove container {name!r}: {error.explanation}; "
                    f"remove it with `docker rm -f {name}`"
                ) from error
    return sorted(found)
