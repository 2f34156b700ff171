"""GceSettings: where a cluster's Compute Engine VMs live, what they boot, and how long to wait.

Also the naming rules Compute Engine imposes, which the provider checks before it asks.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

INSTANCE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
"""Compute Engine instance names (RFC 1035 labels, at most 63 characters)."""

LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
"""Compute Engine label values: lowercase letters, digits, '_' and '-', 63 at most."""

DEFAULT_INSTALL = """\
if [ ! -x /opt/burla/bin/python ]; then
  apt-get update -qq && apt-get install -y -qq python3-venv
  python3 -m venv /opt/burla
fi
if [ "${BURLA_CONTAINERS:-process}" = docker ] && ! command -v dockerd >/dev/null; then
  apt-get update -qq && apt-get install -y -qq docker.io
fi
/opt/burla/bin/pip install --quiet --upgrade 'burla-cluster[gcp,docker]'"""
"""Installs burla in its own virtual environment on a Debian or Ubuntu image, and the
Docker engine (Debian's docker.io, started as a service) when workers run in containers.
It runs after the node's environment is exported, so it can read BURLA_CONTAINERS."""
DEFAULT_NODE_COMMAND = ("/opt/burla/bin/python", "-m", "burla.services.node_service")


def checked_cluster_name(cluster: str) -> str:
    """`cluster`, if it can name and label a cluster's VMs; ValueError otherwise."""
    if not INSTANCE_NAME.fullmatch(cluster):
        raise ValueError(
            f"cluster name {cluster!r} must start with a lowercase letter and hold only "
            "lowercase letters, digits and '-' (it names and labels the cluster's VMs)"
        )
    return cluster


class GceSettings(BaseModel):
    """One cluster's machines on Compute Engine.

    Instances are named `<cluster>-<node id>` and labelled with the cluster, node id and
    node type, so several clusters share a project and zone. A node type's name is the
    machine type it runs on (e.g. "n2-standard-96").

    Each VM's startup script runs `install_command` (None when `source_image` already
    holds burla), then `node_command` in `node_dir` (relative paths are taken from the
    script's working directory, which is / on Compute Engine).

    Operations are polled every `first_poll_s`, doubling up to `max_poll_s`; one that is
    not done after `operation_timeout_s` is reported as a failure.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=1)
    zone: str = Field(min_length=1)
    cluster: str = Field(min_length=1, max_length=30)
    source_image: str = Field(min_length=1)
    disk_size_gb: int = Field(default=50, ge=10)
    network: str = "global/networks/default"
    external_ip: bool = True
    """Give each VM a public address, so it can install packages without Cloud NAT."""
    service_account: str = "default"
    install_command: str | None = DEFAULT_INSTALL
    node_command: tuple[str, ...] = Field(default=DEFAULT_NODE_COMMAND, min_length=1)
    node_dir: str = Field(default="/var/lib/burla/node", min_length=1)
    first_poll_s: float = Field(default=1.0, gt=0)
    max_poll_s: float = Field(default=10.0, gt=0)
    operation_timeout_s: float = Field(default=600.0, gt=0)

    @field_validator("cluster")
    @classmethod
    def _cluster_is_a_label(cls, cluster: str) -> str:
        return checked_cluster_name(cluster)

    @model_validator(mode="after")
    def _polls_ordered(self) -> GceSettings:
        if self.max_poll_s < self.first_poll_s:
            raise ValueError(
                f"max_poll_s ({self.max_poll_s}) must be at least first_poll_s "
                f"({self.first_poll_s})"
            )
        return self

    def instance_name(self, node_id: str) -> str:
        return f"{self.cluster}-{node_id}"
