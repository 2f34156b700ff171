"""node_service's process: builds its backends from the environment its ComputeProvider gave it."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup
from pydantic import BaseModel, Field

from burla.backends.local.containers import LocalContainerRuntime
from burla.backends.local.envs import LOCAL_DEFAULT_IMAGE, ensure_worker_env
from burla.backends.local.images import venv_image_python
from burla.backends.local.node_spare import SPARE_ENV, take_spare_boot
from burla.backends.urls import open_blobs, open_store
from burla.client.http import HttpError, HttpPool
from burla.core.backoff import Backoff
from burla.core.clock import WallClock
from burla.core.environment import PACKAGES_LIMIT_BYTES
from burla.core.errors import (
    BackendError,
    BurlaError,
    ClusterUnavailableError,
    VersionMismatchError,
)
from burla.core.models import NodeType, StandbyDefinition
from burla.core.protocols import ContainerRuntime, Mount
from burla.core.trace import mark
from burla.release import build_id
from burla.services import running
from burla.services.cluster_keys import blob_signing_key
from burla.services.framing import serve_frames
from burla.services.node_service.link import MainLink
from burla.services.node_service.metadata_guard import (
    WORKER_USER,
    MetadataGuard,
    metadata_address,
)
from burla.services.node_service.node import NodeService
from burla.services.retrying import resilient
from burla.services.store_keys import LEASE_S, STANDBY_KEY

if TYPE_CHECKING:
    from burla.backends.docker.runtime import DockerRuntime

BOOTED_RETRY_S = 600.0
"""How long a booted node keeps asking a main_service that does not answer to take it."""
CLUSTER_DIR_IN_CONTAINER = "/opt/burla/cluster"
"""Where a Docker worker sees the cluster's directory (read-only)."""


class NodeSettings(BaseModel):
    """What node_service is told: the environment its ComputeProvider started it with."""

    node_id: str
    node_type: NodeType
    main_url: str
    main_cert_sha256: str | None = None
    """The fingerprint of main_service's TLS certificate, pinned, for an https main_url."""
    node_dir: Path
    store_url: str
    blobs_url: str
    secret: str
    local_dir: Path
    worker_python: Path | None = None
    """The python of the default worker environment, when main_service built it (a local
    cluster's); else the node builds it under `local_dir`."""
    host: str = "127.0.0.1"
    """Where main_service's connection comes in: 0.0.0.0 on a VM of a cloud cluster."""
    advertise_host: str | None = None
    """The address main_service reaches this node at, if not `host` (a VM's own IP)."""
    address_from: Literal["bound", "gce-metadata"] = "bound"
    """Where a node with no `advertise_host` finds it: its bound host (or the interface
    facing main_service), or its VM's metadata server (internal IP on Compute Engine)."""
    containers: Literal["process", "docker"] = "process"
    """What the workers run in: processes of this node, or Docker containers."""
    registry_login: Literal["google", "none"] = "none"
    """How images are pulled: with the VM's service account, or the engine's own login."""
    guard_metadata: bool = False
    """Keep Docker workers from the VM's metadata server (see metadata_guard)."""
    packages_max_gb: float = Field(default=PACKAGES_LIMIT_BYTES / 2**30, ge=0)
    """The unpacked packages kept for later jobs, at most (least recently used go)."""
    lease_s: float = Field(default=LEASE_S, gt=0)
    """How long inputs this node claimed stay its own without renewal: how soon another
    node may run them if this one vanishes."""

    @classmethod
    def from_env(cls) -> NodeSettings:
        env = os.environ
        return cls(
            node_id=env["BURLA_NODE_ID"],
            node_type=NodeType.model_validate_json(env["BURLA_NODE_TYPE"]),
            main_url=env["BURLA_MAIN_URL"],
            main_cert_sha256=env.get("BURLA_MAIN_CERT_SHA256") or None,
            node_dir=Path(env["BURLA_NODE_DIR"]),
            store_url=env["BURLA_STORE_URL"],
            blobs_url=env["BURLA_BLOBS_URL"],
            secret=env["BURLA_SECRET"],
            local_dir=Path(env["BURLA_LOCAL_DIR"]),
            worker_python=env.get("BURLA_WORKER_PYTHON") or None,
            host=env.get("BURLA_NODE_HOST") or "127.0.0.1",
            advertise_host=env.get("BURLA_NODE_ADVERTISE_HOST") or None,
            address_from=env.get("BURLA_NODE_ADDRESS_FROM") or "bound",
            containers=env.get("BURLA_CONTAINERS") or "process",
            registry_login=env.get("BURLA_REGISTRY_LOGIN") or "none",
            guard_metadata=env.get("BURLA_GUARD_METADATA") == "1",
            lease_s=float(env.get("BURLA_LEASE_S") or LEASE_S),
            packages_max_gb=float(env.get("BURLA_PACKAGES_MAX_GB") or PACKAGES_LIMIT_BYTES / 2**30),
        )


async def serve(settings: NodeSettings) -> None:
    clock = WallClock()
    store, blobs = resilient(
        open_store(settings.store_url, clock),
        open_blobs(settings.blobs_url, blob_signing_key(settings.secret), clock),
        os.environ,
    )
    standby_doc = await store.get(STANDBY_KEY)
    standby = StandbyDefinition.model_validate(standby_doc.data if standby_doc else {})
    status_dir = settings.node_dir / "status"
    status_dir.mkdir(parents=True, exist_ok=True)
    packages_of(settings).mkdir(parents=True, exist_ok=True)
    async with _guarding_metadata(settings, status_dir):
        docker_runtime: DockerRuntime | None = None
        if settings.containers == "docker":
            docker_runtime = await anyio.to_thread.run_sync(
                open_docker_runtime, settings, standby, status_dir
            )
            await docker_runtime.aclose()  # what an earlier node of this id left
            runtime: ContainerRuntime = docker_runtime
            worker_env = cloud_worker_env(settings) or {
                # A function that calls remote_parallel_map itself reaches this same cluster.
                "BURLA_BACKEND": "docker",
                "BURLA_DOCKER_DIR": CLUSTER_DIR_IN_CONTAINER,
            }
        else:
            runtime, worker_env = process_runtime(settings)
        link = MainLink(settings.secret)
        node = NodeService(
            node_id=settings.node_id,
            node_type=settings.node_type,
            containers=standby.containers,
            runtime=runtime,
            store=store,
            blobs=blobs,
            report=link.report,
            clock=clock,
            status_dir=status_dir,
            worker_env=worker_env,
            package_dir=packages_of(settings),
            lease_s=settings.lease_s,
            package_limit_bytes=int(settings.packages_max_gb * 2**30),
        )
        try:
            await _serve_link(settings, node, link)
        finally:
            with anyio.CancelScope(shield=True):
                if docker_runtime is not None:
                    await docker_runtime.aclose()  # all at once, within main_service's grace
                await node.aclose()


@contextlib.asynccontextmanager
async def _guarding_metadata(settings: NodeSettings, status_dir: Path) -> AsyncIterator[None]:
    """While the node runs, its Docker workers are kept from the VM's metadata server, if
    it is told to keep them from it (see metadata_guard)."""
    guard = metadata_guard(settings)
    if guard is None:
        yield
        return
    os.chown(status_dir, *WORKER_USER)  # where the workers write their status
    await anyio.to_thread.run_sync(guard.install)
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(guard.remove)


def metadata_guard(settings: NodeSettings) -> MetadataGuard | None:
    """The guard of the VM's metadata server, for a node whose workers are containers and
    that is told to keep them from it; BackendError unless it runs as root."""
    if not settings.guard_metadata or settings.containers != "docker":
        return None
    if os.geteuid() != 0:
        raise BackendError(
            "keeping the workers from the VM's metadata server needs root (an iptables rule "
            "and their own user): run node_service as root, or set BURLA_GUARD_METADATA=0"
        )
    return MetadataGuard(metadata_address(os.environ), WORKER_USER[0], f"burla-{settings.node_id}")


def process_runtime(settings: NodeSettings) -> tuple[ContainerRuntime, dict[str, str]]:
    """Workers as processes of this node, and the environment they get."""
    python = settings.worker_python or ensure_worker_env(settings.local_dir)
    images = {LOCAL_DEFAULT_IMAGE: str(python)}
    find_image = functools.partial(venv_image_python, settings.local_dir)
    runtime = LocalContainerRuntime(settings.node_dir, images, find_image=find_image)
    # A worker goes when its node goes; a nested call reaches this same cluster.
    env = {"BURLA_LOCAL_DIR": str(settings.local_dir), "BURLA_PARENT_PID": str(os.getpid())}
    return runtime, env | cloud_worker_env(settings)


def cloud_worker_env(settings: NodeSettings) -> dict[str, str]:
    """On a cloud cluster's node, what sends a nested call to main_service (with the job's
    own token, which each job brings); nothing on a machine's own cluster."""
    if settings.store_url.startswith("sqlite:"):
        return {}
    pin = {"BURLA_MAIN_CERT_SHA256": settings.main_cert_sha256} if settings.main_cert_sha256 else {}
    return {"BURLA_BACKEND": "gcp", "BURLA_MAIN_URL": settings.main_url, **pin}


async def _serve_link(settings: NodeSettings, node: NodeService, link: MainLink) -> None:
    """Listen for main_service's connection, then tell main_service where."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((settings.host, 0))
    sock.listen()
    host = await anyio.to_thread.run_sync(advertised_host, settings)
    address = f"{host}:{sock.getsockname()[1]}"
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(running.cancel_on_signal, tasks)
        tasks.start_soon(_exit_with_parent, tasks)
        tasks.start_soon(anyio.to_thread.run_sync, build_id)  # while the workers start
        await node.run(tasks)
        tasks.start_soon(serve_frames, sock, functools.partial(link.serve, node), tasks)
        running.write_atomically(settings.node_dir / "address", address)
        mark("node_service's workers listen")
        await _say_booted(settings, address)


async def _say_booted(settings: NodeSettings, address: str) -> None:
    """Tell main_service where this node listens. One that does not answer (restarting,
    after a crash) is asked again with growing pauses for BOOTED_RETRY_S: the next one
    takes the node on. One request, sent from a thread with the client's own HTTP pool, so
    that a node starts without loading an async HTTP client."""
    backoff = Backoff(0.2, 5.0, clock=anyio.current_time, give_up_after_s=BOOTED_RETRY_S)
    booted = {"address": address, "build": build_id()}
    headers = {"authorization": f"Bearer {settings.secret}"}
    path = f"/nodes/{settings.node_id}/booted"
    while True:
        http = HttpPool(settings.main_url, headers, 60.0, settings.main_cert_sha256)
        try:
            response = await anyio.to_thread.run_sync(
                functools.partial(http.request, "POST", path, json_body=booted)
            )
            if response.status_code < 500:
                break
            problem = f"it answered {response.status_code}"
        except (HttpError, ConnectionError) as error:
            problem = str(error) or type(error).__name__
        finally:
            http.close()
        if backoff.exhausted:
            raise ClusterUnavailableError(
                f"main_service at {settings.main_url} did not take this node for "
                f"{backoff.elapsed_s:.0f} s ({problem})"
            )
        await anyio.sleep(backoff.pause())
    if response.status_code == 400 and "VersionMismatchError" in response.text:
        raise VersionMismatchError(response.json()["message"])
    if not response.is_success:
        raise ClusterUnavailableError(
            f"main_service at {settings.main_url} would not take this node: it answered "
            f"{response.status_code}: {response.text[:500]}"
        )


def packages_of(settings: NodeSettings) -> Path:
    """Where the node keeps the packages jobs need: one place for the nodes of a machine."""
    return settings.local_dir.resolve() / "packages"


def advertised_host(settings: NodeSettings) -> str:
    """Where main_service reaches this node: the advertised host, else its VM's internal
    IP if told to ask, else the bound host; a node bound to every interface names the one
    its route to main_service leaves by."""
    if settings.advertise_host:
        return settings.advertise_host
    if settings.address_from == "gce-metadata":
        from burla.backends.gcp.metadata import internal_ip

        return internal_ip(os.environ)
    if settings.host not in ("0.0.0.0", "::"):
        return settings.host
    main = urlsplit(settings.main_url)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((main.hostname or "127.0.0.1", main.port or 80))  # sends nothing
        host: str = probe.getsockname()[0]
        return host


def open_docker_runtime(
    settings: NodeSettings, standby: StandbyDefinition, status_dir: Path
) -> DockerRuntime:
    """The node's Docker runtime, once the engine answers and has every standby image
    (those named with their registry are pulled first, so the node's first job starts warm).

    A Docker worker sees, at the same paths as the node, its own directory, the node's
    status directory (read-write: the node reads from it which input a worker that died
    was running), the packages jobs need (read-only; see node_service.packages) and the
    blob store's directory (big inputs are read from their file:// signed URLs;
    read-write, since a function that calls remote_parallel_map with big inputs uploads
    them there). The cluster's directory appears read-only at CLUSTER_DIR_IN_CONTAINER, so
    that a function that calls remote_parallel_map finds the cluster's address and token
    in its cluster.json and reaches it over the host network.
    """
    from burla.backends.docker.client import connect
    from burla.backends.docker.cluster import cluster_node_id
    from burla.backends.docker.image import has_image, pull_image, registry_of
    from burla.backends.docker.runtime import DockerRuntime

    login = None
    if settings.registry_login == "google":
        from burla.backends.gcp.registry_logins import vm_login

        login = vm_login(os.environ)
    client = connect()
    try:
        for spec in standby.containers:
            if has_image(client, spec.image):
                continue
            if registry_of(spec.image) is None:
                raise BackendError(
                    f"the Docker engine has no image {spec.image!r}, which this node's "
                    "workers run in; build the default one with `burla image build`"
                )
            pull_image(client, spec.image, login)  # a cloud node's come from a registry
    except BurlaError:
        client.close()
        raise
    mounts = [Mount(str(status_dir), str(status_dir), read_only=False)]
    mounts.append(Mount(str(packages_of(settings)), str(packages_of(settings))))
    blobs = urlsplit(settings.blobs_url)
    if blobs.scheme == "file":
        Path(blobs.path).mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(blobs.path, blobs.path, read_only=False))
    mounts.append(Mount(str(settings.local_dir.resolve()), CLUSTER_DIR_IN_CONTAINER))
    node_id = cluster_node_id(settings.local_dir, settings.node_id)
    user = WORKER_USER if settings.guard_metadata else None
    return DockerRuntime(
        node_id, settings.node_dir, client=client, mounts=mounts, login=login, user=user
    )


async def _exit_with_parent(tasks: TaskGroup) -> None:
    """A node started by a local main_service goes when that process goes."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells of a parent's death
        await anyio.sleep(0.5)
    tasks.cancel_scope.cancel()


def main() -> None:
    mark("node_service has loaded its modules")
    if os.environ.get(SPARE_ENV):
        take_spare_boot()
        mark("node_service has its node's boot")
    settings = NodeSettings.from_env()
    problem = ""
    try:
        running.run(serve, settings)
    except* BurlaError as failed:  # one that stops the node before it serves: say why
        problem = "; ".join(str(error) for error in running.leaf_errors(failed))
    if problem:
        sys.exit(f"node {settings.node_id} cannot run: {problem}")


if __name__ == "__main__":
    main()
