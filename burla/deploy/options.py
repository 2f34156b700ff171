"""What `burla deploy` is asked for, and the names of everything it makes from that."""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from burla.backends.gcp.gce_settings import checked_cluster_name

DEFAULT_IMAGE = "projects/debian-cloud/global/images/family/debian-12"
CLUSTER_LABEL = "burla-cluster"
"""The label every resource deploy makes carries (as the nodes' VMs already do)."""
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")


class GoogleEndpoints(BaseModel):
    """Stand-ins of Google's APIs to use instead of Google's own, without credentials:
    how burla's tests run deploy on one machine. Unset: Google's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    compute: str | None = None
    service_usage: str | None = None
    resource_manager: str | None = None
    firestore_admin: str | None = None
    artifact_registry: str | None = None
    iam: str | None = None
    """host:port of a gRPC stand-in (the IAM client speaks gRPC only)."""

    @property
    def any(self) -> bool:
        return any(value is not None for value in self.model_dump().values())


class DeployOptions(BaseModel):
    """The flags of `burla deploy` (see its --help)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=1)
    region: str
    zone: str | None = None
    cluster: str = Field(default="burla", min_length=1, max_length=30)
    machine_type: str = "n2-standard-4"
    spot: bool = False
    """The nodes are spot VMs (main_service's own VM never is)."""
    main_machine_type: str = "e2-standard-2"
    standby: int = Field(default=1, ge=0)
    max_nodes: int | None = Field(default=None, ge=1)
    allow: tuple[str, ...] = ()
    """Who may reach main_service's port: CIDRs (the deployer's own address if none)."""
    port: int = Field(default=8443, ge=1, le=65535)
    pythons: str = "3.11"
    containers: str = "docker"
    source_image: str = DEFAULT_IMAGE
    vm_env: dict[str, str] = Field(default_factory=dict)
    """More environment for main_service's VM (its startup script and main_service)."""

    @field_validator("region")
    @classmethod
    def _region_named(cls, region: str) -> str:
        if not _REGION.fullmatch(region):
            raise ValueError(f"{region!r} is not a Compute Engine region, e.g. us-central1")
        return region

    @field_validator("cluster")
    @classmethod
    def _cluster_named(cls, cluster: str) -> str:
        return checked_cluster_name(cluster)

    @field_validator("allow")
    @classmethod
    def _networks(cls, allow: tuple[str, ...]) -> tuple[str, ...]:
        for network in allow:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"--allow {network!r} is not an address or CIDR") from None
        return allow

    @model_validator(mode="after")
    def _zone_in_region(self) -> DeployOptions:
        if self.zone is not None and self.zone.rsplit("-", 1)[0] != self.region:
            raise ValueError(f"zone {self.zone} is not in region {self.region}")
        return self

    @property
    def zone_name(self) -> str:
        return self.zone or f"{self.region}-a"

    @property
    def labels(self) -> dict[str, str]:
        return {CLUSTER_LABEL: self.cluster}

    @property
    def bucket(self) -> str:
        return f"{self.project}-{self.cluster}"

    @property
    def account_id(self) -> str:
        """The cluster's service account: 6 to 30 characters, as IAM requires."""
        return f"{self.cluster[:22].rstrip('-')}-cluster"

    @property
    def account_email(self) -> str:
        return f"{self.account_id}@{self.project}.iam.gserviceaccount.com"

    @property
    def repository(self) -> str:
        """The Artifact Registry repository of the cluster's worker images."""
        return self.cluster

    @property
    def registry(self) -> str:
        return f"{self.region}-docker.pkg.dev/{self.project}/{self.repository}"

    @property
    def main_vm(self) -> str:
        return f"{self.cluster}-main"

    @property
    def main_tag(self) -> str:
        """The network tag of main_service's VM, which its firewall rule opens."""
        return f"{self.cluster}-main"

    @property
    def internal_tag(self) -> str:
        """The network tag of every VM of the cluster, which talk to each other."""
        return self.cluster
