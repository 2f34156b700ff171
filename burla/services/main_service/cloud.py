"""Serve a cloud cluster's main_service: `python -m burla.services.main_service.cloud`.

The cluster lives in one Google Cloud project (burla.core.settings, [gcp] in
~/.burla/config.toml or BURLA_GCP_*): its Store is Firestore under the namespace of the
cluster's name, its blob store the bucket's `<cluster>/` prefix, its nodes Compute Engine
VMs named `<cluster>-node-NNNNNN` that keep `standby_nodes` of `machine_type` waiting.
A node is deleted after its job, and standby nodes a job takes are replaced at once.
Flags say where main_service listens, how nodes reach it, and how a VM starts burla.

Nodes open the same Store and blob store from two URLs in their boot environment
(burla.backends.urls); FIRESTORE_EMULATOR_HOST and STORAGE_EMULATOR_HOST, when set, point
main_service at emulators and are passed on to the nodes. `--compute-endpoint` sends
Compute Engine requests, without credentials, to a stand-in of its API.

Clients connect with `backend = "gcp"`, `main_url` and `token` (printed at start).
Stopping main_service (SIGTERM, SIGINT) deletes its VMs; a new one deletes VMs an
earlier one left behind, since it names nodes afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import anyio

from burla.backends.local.envs import LOCAL_DEFAULT_IMAGE
from burla.backends.urls import GCP_EXTRA
from burla.core.errors import BackendError, BurlaError, InvalidRequestError
from burla.core.models import (
    ClusterConfig,
    ContainerSpec,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.core.settings import GcpSettings, load_settings
from burla.services.cluster_keys import blob_signing_key, node_secret

if TYPE_CHECKING:
    from burla.backends.gcp.compute import GceComputeProvider
    from burla.backends.gcp.gce_settings import GceSettings

EMULATOR_VARIABLES = ("FIRESTORE_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
"""Where the Google Cloud clients find emulators; nodes must use the same ones."""
STOP_TIMEOUT_S = 120.0
"""How long deleting the cluster's VMs may take when main_service stops."""

_MACHINE_TYPE = re.compile(
    r"(?P<family>[a-z][a-z0-9]*)-(?P<kind>standard|highmem|highcpu)-(?P<cpus>\d+)"
)
_CUSTOM_TYPE = re.compile(r"(?:[a-z][a-z0-9]*-)?custom-(?P<cpus>\d+)-(?P<mb>\d+)(?:-ext)?")
_GB_PER_CPU = {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0}
"""Memory per vCPU of most predefined machine types (n2, n2d, e2, c2, c3, n4, ...)."""
_FAMILY_GB_PER_CPU = {
    ("n1", "standard"): 3.75,
    ("n1", "highmem"): 6.5,
    ("n1", "highcpu"): 0.9,
    ("c4", "standard"): 3.75,
    ("c4", "highmem"): 7.75,
    ("c4", "highcpu"): 2.0,
    ("c3", "highcpu"): 2.0,
    ("c3d", "highcpu"): 2.0,
    ("n4", "highcpu"): 2.0,
}


def node_type_of(machine_type: str) -> NodeType:
    """The NodeType of a Compute Engine machine type: its vCPUs and memory."""
    if found := _MACHINE_TYPE.fullmatch(machine_type):
        family, kind, cpus = found["family"], found["kind"], int(found["cpus"])
        ram_gb = cpus * _FAMILY_GB_PER_CPU.get((family, kind), _GB_PER_CPU[kind])
    elif found := _CUSTOM_TYPE.fullmatch(machine_type):
        cpus, ram_gb = int(found["cpus"]), int(found["mb"]) / 1024
    else:
        raise InvalidRequestError(
            f"machine type {machine_type!r} is not one burla can size; use a predefined "
            "standard, highmem or highcpu type (e.g. n2-standard-8) or a custom one "
            "(e.g. n2-custom-8-32768)"
        )
    if cpus == 0:
        raise InvalidRequestError(f"machine type {machine_type!r} has no vCPUs")
    return NodeType(name=machine_type, cpus=cpus, ram_gb=round(ram_gb, 2))


def cluster_config(
    gcp: GcpSettings, max_nodes: int | None, max_nodes_per_job: int | None
) -> ClusterConfig:
    """`standby_nodes` VMs of `machine_type` wait with the default worker environment;
    a job's nodes are deleted after it, and standby is refilled at once (as the seed does)."""
    node_type = node_type_of(gcp.machine_type)
    standby = StandbyDefinition(
        nodes=(StandbyGroup(node_type=node_type, count=gcp.standby_nodes),),
        containers=(ContainerSpec(image=LOCAL_DEFAULT_IMAGE),),
    )
    return ClusterConfig(
        standby=standby,
        node_types=(node_type,),
        max_nodes=max_nodes,
        max_nodes_per_job=max_nodes_per_job,
        release="delete",
        refill_standby=True,
    )


@dataclass(frozen=True)
class CloudPlan:
    """Everything main_service needs, checked before anything is opened."""

    project: str
    bucket: str
    cluster: str
    config: ClusterConfig
    gce: GceSettings
    compute_endpoint: str | None
    signer: str
    token: str
    token_file: Path | None
    host: str
    port: int
    url: str
    boot_env: dict[str, str]


def parser() -> argparse.ArgumentParser:
    described = argparse.ArgumentParser(
        prog="python -m burla.services.main_service.cloud",
        description="Serve the main_service of a burla cluster on Google Cloud. The project, "
        "zone, machine type, standby size, bucket and cluster name come from [gcp] in "
        "~/.burla/config.toml ($BURLA_CONFIG) and BURLA_GCP_* variables.",
    )
    add = described.add_argument
    add("--host", default="0.0.0.0", help="address to listen on (default: every interface)")
    add(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or 8080),  # Cloud Run names the port in $PORT
        help="port to listen on (default: $PORT or 8080)",
    )
    add(
        "--url",
        help="the URL nodes reach main_service at, e.g. http://10.128.0.2:8080 "
        "(default: http://HOST:PORT; needed when HOST is 0.0.0.0)",
    )
    add(
        "--token-file",
        type=Path,
        help="read the clients' token here, or write a new one here "
        "(default: $BURLA_TOKEN, else a new token, printed)",
    )
    add(
        "--store",
        metavar="URL",
        help="the cluster's database: firestore://PROJECT/NAMESPACE or, e.g. on "
        "Memorystore, redis://HOST:PORT/DB?namespace=NAME (default: Firestore in the "
        "project, namespaced by the cluster's name)",
    )
    add("--max-nodes", type=int, help="most VMs at once (default: no limit)")
    add("--max-nodes-per-job", type=int, help="most VMs one job runs on (default: no limit)")
    add(
        "--signer",
        default="iam",
        help="how Cloud Storage URLs are signed: `iam` (as the "
        "service account of the default credentials) or a service account key file, which "
        "must then be at the same path on the nodes (default: iam)",
    )
    add(
        "--compute-endpoint",
        help="a stand-in of the Compute Engine API to use without "
        "credentials, e.g. http://127.0.0.1:8089 (tests)",
    )
    add(
        "--install-command",
        help="shell commands a new VM runs to install burla; `none` "
        "when the source image holds it (default: pip install into /opt/burla)",
    )
    add(
        "--node-command",
        help="the command that starts node_service on a VM "
        "(default: /opt/burla/bin/python -m burla.services.node_service)",
    )
    add("--node-dir", default="/var/lib/burla/node", help="node_service's directory on a VM")
    add(
        "--node-local-dir",
        default="/var/lib/burla",
        help="where a VM keeps the worker environment (BURLA_LOCAL_DIR)",
    )
    add("--node-host", default="0.0.0.0", help="where node_service listens on its VM")
    add(
        "--node-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another variable for node_service's environment (repeatable)",
    )
    add("--service-account", default="default", help="the service account the VMs run as")
    return described


def make_plan(args: argparse.Namespace, gcp: GcpSettings, env: Mapping[str, str]) -> CloudPlan:
    """Check the flags and settings; find the project (and credentials where needed)."""
    compute_endpoint: str | None = args.compute_endpoint
    project = _project(gcp, env, compute_endpoint)
    if args.host in ("0.0.0.0", "::", "") and not args.url:
        raise InvalidRequestError(
            f"main_service listens on every interface ({args.host!r}): give --url, the "
            "address nodes reach it at, e.g. http://10.128.0.2:8080 (the VM's internal IP)"
        )
    url = (args.url or f"http://{args.host}:{args.port}").rstrip("/")
    bucket = gcp.bucket or f"{project}-burla"
    config = cluster_config(gcp, args.max_nodes, args.max_nodes_per_job)
    token = _token(args.token_file, env)
    blobs_url = f"gs://{bucket}/{gcp.cluster}?{urlencode({'signer': args.signer})}"
    boot_env = {
        "BURLA_STORE_URL": args.store or f"firestore://{project}/{gcp.cluster}",
        "BURLA_BLOBS_URL": blobs_url,
        "BURLA_SECRET": node_secret(token),
        "BURLA_LOCAL_DIR": args.node_local_dir,
        "BURLA_NODE_HOST": args.node_host,
        **{name: env[name] for name in EMULATOR_VARIABLES if env.get(name)},
        **_pairs(args.node_env),
    }
    return CloudPlan(
        project=project,
        bucket=bucket,
        cluster=gcp.cluster,
        config=config,
        gce=_gce_settings(args, gcp, project),
        compute_endpoint=compute_endpoint,
        signer=args.signer,
        token=token,
        token_file=args.token_file,
        host=args.host,
        port=args.port,
        url=url,
        boot_env=boot_env,
    )


def _gce_settings(args: argparse.Namespace, gcp: GcpSettings, project: str) -> GceSettings:
    from pydantic import ValidationError

    from burla.backends.gcp.gce_settings import GceSettings

    fields: dict[str, Any] = {
        "project": project,
        "zone": gcp.zone,
        "cluster": gcp.cluster,
        "source_image": gcp.source_image,
        "node_dir": args.node_dir,
        "service_account": args.service_account,
    }
    if args.install_command is not None:
        none = args.install_command.strip().lower() in ("", "none")
        fields["install_command"] = None if none else args.install_command
    if args.node_command is not None:
        fields["node_command"] = tuple(shlex.split(args.node_command))
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


async def serve(plan: CloudPlan) -> None:
    """Open the cluster's backends, serve main_service until SIGTERM or SIGINT, then delete
    the cluster's VMs."""
    from burla.backends.urls import close_store, open_blobs, open_store
    from burla.core.clock import WallClock
    from burla.services import serving
    from burla.services.main_service.app import create_app
    from burla.services.main_service.service import MainService
    from burla.services.retrying import resilient

    sock = _listen(plan.host, plan.port)  # first: a port in use fails before anything opens
    clock = WallClock()
    store = open_store(plan.boot_env["BURLA_STORE_URL"], clock)
    try:
        signing_key = blob_signing_key(plan.boot_env["BURLA_SECRET"])
        blobs = open_blobs(plan.boot_env["BURLA_BLOBS_URL"], signing_key, clock)
        compute = _compute_provider(plan)
        try:
            await _delete_machines(compute)  # left by an earlier main_service
            retried_store, retried_blobs = resilient(store, blobs, os.environ)
            service = MainService(
                config=plan.config,
                store=retried_store,
                blobs=retried_blobs,
                compute=compute,
                clock=clock,
                main_url=plan.url,
                boot_env=plan.boot_env,
                token=plan.token,
            )
            async with anyio.create_task_group() as tasks:
                await serving.start(create_app(service, plan.token), sock, tasks)
                await service.run(tasks)
                _announce(plan)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    with anyio.move_on_after(STOP_TIMEOUT_S):
                        await _delete_machines(compute)
                finally:
                    await compute.aclose()
    finally:
        sock.close()
        with anyio.CancelScope(shield=True):
            await close_store(store)


def _compute_provider(plan: CloudPlan) -> GceComputeProvider:
    from burla.backends.gcp.compute import GceComputeProvider

    if plan.compute_endpoint is None:
        return GceComputeProvider(plan.gce)
    from google.auth.credentials import AnonymousCredentials

    return GceComputeProvider(
        plan.gce,
        client_options={"api_endpoint": plan.compute_endpoint},
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
    )


async def _delete_machines(compute: GceComputeProvider) -> None:
    machines = await compute.list()
    async with anyio.create_task_group() as tasks:
        for machine in machines:
            tasks.start_soon(compute.delete, machine.node_id)


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket; IPPROTO_TCP named so that accepted connections have Nagle off."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise InvalidRequestError(
            f"main_service cannot listen on {host}:{port} ({error}); choose another --host "
            "or --port"
        ) from None
    return sock


def _announce(plan: CloudPlan) -> None:
    nodes = plan.config.standby.nodes[0]
    token = (
        f"token = <the contents of {plan.token_file}>"
        if plan.token_file is not None
        else f"token = {json.dumps(plan.token)}"
    )
    print(
        f"burla main_service of cluster {plan.cluster!r} (project {plan.project}) serves at "
        f"{plan.url}; standby: {nodes.count} x {nodes.node_type.describe()}\n"
        "clients connect with, in ~/.burla/config.toml (main_url: any address of this "
        "machine the client reaches, e.g. through a tunnel):\n"
        f'backend = "gcp"\nmain_url = "{plan.url}"\n{token}',
        flush=True,
    )


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    problem = ""
    try:
        require_gcp_extra()
        plan = make_plan(args, load_settings().gcp, os.environ)
        from burla.services import serving

        serving.run(serve, plan)
    except* (BurlaError, ImportError) as failed:
        problem = "; ".join(str(leaf) for leaf in _leaves(failed))
    if problem:
        sys.exit(f"burla main_service: {problem}")


if __name__ == "__main__":
    main()
