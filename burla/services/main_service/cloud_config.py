"""A cloud cluster's plan from main_service's flags and [gcp] settings, checked up front."""

from __future__ import annotations

import json
import os
import secrets
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from burla.backends.docker.image import WORKER_SUITES, default_image_tag
from burla.backends.gcp.machine_types import node_type_of
from burla.backends.local.envs import LOCAL_DEFAULT_IMAGE
from burla.backends.urls import GCP_EXTRA
from burla.core.errors import BackendError, InvalidRequestError
from burla.core.models import ClusterConfig, ContainerSpec, StandbyDefinition, StandbyGroup
from burla.core.settings import GcpSettings
from burla.services.cluster_keys import node_secret

if TYPE_CHECKING:
    from burla.backends.gcp.gce_settings import GceSettings
    from burla.services.tls import ServerCertificate

EMULATOR_VARIABLES = ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
"""Where the Google Cloud clients find emulators; nodes must use the same ones."""


@dataclass(frozen=True)
class CloudOptions:
    """The flags of `python -m burla.services.main_service cloud` (see its --help)."""

    host: str
    port: int
    url: str | None
    token_file: Path | None
    store: str | None
    tls_dir: Path | None
    tls_name: tuple[str, ...]
    max_nodes: int | None
    max_nodes_per_job: int | None
    signer: str
    compute_endpoint: str | None
    install_command: str | None
    install_file: Path | None
    node_command: str | None
    node_dir: str
    node_local_dir: str
    node_host: str
    node_env: tuple[str, ...]
    service_account: str


@dataclass(frozen=True)
class CloudPlan:
    """Everything main_service needs, checked before anything is opened."""

    project: str
    bucket: str
    cluster: str
    config: ClusterConfig
    gce: GceSettings
    compute_endpoint: str | None
    token: str
    token_file: Path | None
    host: str
    port: int
    url: str
    boot_env: dict[str, str]
    registry: str | None
    """Where the nodes pull images from (None: their workers are processes)."""
    registry_login: str
    """"google" or "none": see GcpSettings.registry_login."""
    tls: ServerCertificate | None = None
    """The certificate main_service serves HTTPS with; None: plain HTTP."""


def cluster_config(
    gcp: GcpSettings,
    registry: str | None,
    max_nodes: int | None,
    max_nodes_per_job: int | None,
) -> ClusterConfig:
    """`standby_nodes` VMs of `machine_type` (spot VMs with `spot`) wait with the default
    worker image of each of `pythons` (pulled from `registry`; without one, the node's own
    worker environment); a job's nodes are deleted after it, and standby is refilled at
    once (as the seed does)."""
    node_type = node_type_of(gcp.machine_type).model_copy(update={"spot": gcp.spot})
    pythons = python_versions(gcp)
    if registry is None:
        if len(pythons) > 1:
            raise InvalidRequestError(
                f"pythons = {gcp.pythons!r} in [gcp]: workers that run as processes run the "
                'node\'s own Python; set containers = "docker" to keep several'
            )
        containers: tuple[ContainerSpec, ...] = (
            ContainerSpec(image=LOCAL_DEFAULT_IMAGE, default=True),
        )
    else:
        containers = tuple(
            ContainerSpec(
                image=f"{registry}/{default_image_tag(python)}",
                python_version=python,
                default=True,
            )
            for python in pythons
        )
    standby = StandbyDefinition(
        nodes=(StandbyGroup(node_type=node_type, count=gcp.standby_nodes),),
        containers=containers,
    )
    return ClusterConfig(
        standby=standby,
        node_types=(node_type,),
        max_nodes=max_nodes,
        max_nodes_per_job=max_nodes_per_job,
        release="delete",
        refill_standby=True,
    )


def python_versions(gcp: GcpSettings) -> tuple[str, ...]:
    """The Python versions of [gcp] pythons, each one burla builds a default image for."""
    pythons = tuple(dict.fromkeys(p.strip() for p in gcp.pythons.split(",") if p.strip()))
    unknown = [python for python in pythons if python not in WORKER_SUITES]
    if unknown or not pythons:
        raise InvalidRequestError(
            f"pythons = {gcp.pythons!r} in [gcp] (BURLA_GCP_PYTHONS): burla builds default "
            f"images for Python {', '.join(WORKER_SUITES)}; name one or more, comma-separated"
        )
    return pythons


def make_plan(options: CloudOptions, gcp: GcpSettings, env: Mapping[str, str]) -> CloudPlan:
    """Check the flags and settings; find the project (and credentials where needed)."""
    project = _project(gcp, env, options.compute_endpoint)
    if options.host in ("0.0.0.0", "::", "") and not options.url:
        raise InvalidRequestError(
            f"main_service listens on every interface ({options.host!r}): give --url, the "
            "address nodes reach it at, e.g. http://10.128.0.2:8080 (the VM's internal IP)"
        )
    tls = _certificate(options)
    scheme = "https" if tls else "http"
    url = (options.url or f"{scheme}://{options.host}:{options.port}").rstrip("/")
    if not url.startswith(f"{scheme}://"):
        raise InvalidRequestError(
            f"--url {url} must start with {scheme}:// since main_service serves "
            f"{scheme.upper()} ({'with' if tls else 'without'} --tls-dir)"
        )
    bucket = gcp.bucket or f"{project}-burla"
    registry = _registry(gcp, project)
    config = cluster_config(gcp, registry, options.max_nodes, options.max_nodes_per_job)
    token = _token(options.token_file, env)
    blobs_url = f"gs://{bucket}/{gcp.cluster}?{urlencode({'signer': options.signer})}"
    boot_env = {
        "BURLA_STORE_URL": options.store or f"firestore://{project}/{gcp.cluster}",
        "BURLA_BLOBS_URL": blobs_url,
        "BURLA_SECRET": node_secret(token),
        "BURLA_LOCAL_DIR": options.node_local_dir,
        "BURLA_NODE_HOST": options.node_host,
        "BURLA_CONTAINERS": gcp.containers,
        "BURLA_REGISTRY_LOGIN": gcp.registry_login,
        **({"BURLA_MAIN_CERT_SHA256": tls.fingerprint} if tls else {}),
        **{name: env[name] for name in EMULATOR_VARIABLES if env.get(name)},
        **_pairs(options.node_env),
    }
    return CloudPlan(
        project=project,
        bucket=bucket,
        cluster=gcp.cluster,
        config=config,
        gce=_gce_settings(options, gcp, project),
        compute_endpoint=options.compute_endpoint,
        token=token,
        token_file=options.token_file,
        host=options.host,
        port=options.port,
        url=url,
        boot_env=boot_env,
        registry=registry,
        registry_login=gcp.registry_login,
        tls=tls,
    )


def _certificate(options: CloudOptions) -> ServerCertificate | None:
    if options.tls_dir is None:
        if options.tls_name:
            raise InvalidRequestError("--tls-name names a certificate: give --tls-dir too")
        return None
    from burla.services.tls import ensure_certificate

    return ensure_certificate(options.tls_dir, options.tls_name)


def _registry(gcp: GcpSettings, project: str) -> str | None:
    """The registry of a cluster whose workers run in containers."""
    if gcp.containers not in ("docker", "process"):
        raise InvalidRequestError(
            f"containers = {gcp.containers!r} in [gcp] (BURLA_GCP_CONTAINERS): the nodes' "
            "workers run in 'docker' containers or as 'process'es"
        )
    if gcp.registry_login not in ("google", "none"):
        raise InvalidRequestError(
            f"registry_login = {gcp.registry_login!r} in [gcp] (BURLA_GCP_REGISTRY_LOGIN): log "
            "in with 'google' credentials (Artifact Registry) or 'none' (the engine's own)"
        )
    if gcp.containers == "process":
        return None
    return (gcp.registry or f"{gcp.region}-docker.pkg.dev/{project}/burla").rstrip("/")


def _gce_settings(options: CloudOptions, gcp: GcpSettings, project: str) -> GceSettings:
    from pydantic import ValidationError

    from burla.backends.gcp.gce_settings import GceSettings

    fields: dict[str, Any] = {
        "project": project,
        "zone": gcp.zone,
        "cluster": gcp.cluster,
        "source_image": gcp.source_image,
        "node_dir": options.node_dir,
        "service_account": options.service_account,
    }
    install = options.install_command
    if options.install_file is not None:
        if install is not None:
            raise InvalidRequestError("give --install-command or --install-file, not both")
        try:
            install = options.install_file.read_text()
        except OSError as error:
            raise InvalidRequestError(f"cannot read --install-file: {error}") from None
    if install is not None:
        none = install.strip().lower() in ("", "none")
        fields["install_command"] = None if none else install
    if options.node_command is not None:
        fields["node_command"] = tuple(shlex.split(options.node_command))
    try:
        return GceSettings(**fields)
    except ValidationError as error:
        problems = "; ".join(e["msg"] for e in error.errors())
        raise InvalidRequestError(f"the cluster's VM settings are not valid: {problems}") from None


def _pairs(items: Sequence[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise InvalidRequestError(f"--node-env {item!r} is not NAME=VALUE")
        pairs[name] = value
    return pairs


def _token(path: Path | None, env: Mapping[str, str]) -> str:
    """The admin's token: from the file, else BURLA_TOKEN, else new."""
    if path is not None and path.exists():
        token = path.read_text().strip()
        if not token:
            raise InvalidRequestError(f"the token file {path} is empty; remove it for a new token")
        return token
    token = env.get("BURLA_TOKEN") or secrets.token_hex(32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(token + "\n")
    return token


def _project(gcp: GcpSettings, env: Mapping[str, str], compute_endpoint: str | None) -> str:
    """The cluster's project: [gcp] project, else that of the application default
    credentials, which must exist whenever one of Google's own services is used."""
    emulated = all(env.get(name) for name in EMULATOR_VARIABLES) and compute_endpoint
    found = None if emulated else _credentials_project()
    project = gcp.project or found
    if not project:
        raise InvalidRequestError(
            "name the cluster's project: set project in [gcp] of ~/.burla/config.toml, or "
            "BURLA_GCP_PROJECT"
        )
    return project


def _credentials_project() -> str | None:
    """The project of the application default credentials; BackendError without them."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        _, project = google.auth.default()
    except DefaultCredentialsError as error:
        raise BackendError(
            f"no Google Cloud credentials ({error}); run `gcloud auth application-default "
            "login`, set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, or "
            "run main_service on a VM or Cloud Run service with a service account"
        ) from None
    return project


def require_gcp_extra() -> None:
    """Fail early, with the fix, when the Google Cloud client libraries are missing."""
    try:
        import google.cloud.compute_v1
        import google.cloud.firestore_v1
        import google.cloud.storage  # type: ignore[import-untyped]  # noqa: F401
    except ImportError as missing:
        raise ImportError(f"{missing}: a cluster on Google Cloud needs {GCP_EXTRA}") from None


def announcement(plan: CloudPlan) -> str:
    """What main_service prints once it serves: where, and how clients connect."""
    nodes = plan.config.standby.nodes[0]
    pin = f'main_cert_sha256 = "{plan.tls.fingerprint}"\n' if plan.tls else ""
    token = (
        f"token = <the contents of {plan.token_file}>"
        if plan.token_file is not None
        else f"token = {json.dumps(plan.token)}"
    )
    return (
        f"burla main_service of cluster {plan.cluster!r} (project {plan.project}) serves at "
        f"{plan.url}; standby: {nodes.count} x {nodes.node_type.describe()}\n"
        "clients connect with, in ~/.burla/config.toml (main_url: any address of this "
        "machine the client reaches, e.g. through a tunnel):\n"
        f'backend = "gcp"\nmain_url = "{plan.url}"\n{pin}{token}'
    )
