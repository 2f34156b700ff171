"""main_service's start: the backends it runs on, this machine's or Google Cloud's, its
first node, and serving until it is told to stop (__main__ is its command line)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from burla.backends.local.compute import LocalComputeProvider
from burla.backends.local.images import LocalVenvImages
from burla.backends.urls import close_store, open_blobs, open_store
from burla.core.clock import Clock, WallClock
from burla.core.cost import ListPrice, this_machine
from burla.core.errors import BackendError, InvalidRequestError
from burla.core.models import ClusterConfig
from burla.core.protocols import BlobStore, BootSpec, ImageMaker, Machine, MachineStatus, Store
from burla.core.trace import mark
from burla.release import build_id, install_stamp
from burla.services import running
from burla.services.cluster_keys import blob_signing_key
from burla.services.loopback import bind_loopback
from burla.services.main_service.local_config import (
    FIRST_NODE,
    local_boot_env,
    local_config,
    standby_image,
)
from burla.services.main_service.local_start import Containers
from burla.services.store_keys import STANDBY_KEY

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from burla.backends.gcp.compute import GceComputeProvider
    from burla.services.main_service.cloud_config import CloudPlan
    from burla.services.main_service.service import MainService
    from burla.services.serving import Server
    from burla.services.tls import ServerCertificate

CLUSTER_FILE = "cluster.json"
"""In a local cluster's directory while it serves: where clients connect, with what token."""
STOP_TIMEOUT_S = 120.0
"""How long deleting the cluster's machines may take when main_service stops."""


@dataclass(frozen=True)
class Setup:
    """What main_service starts with, whatever it runs on."""

    config: ClusterConfig
    url: str
    """Where nodes reach main_service."""
    token: str
    boot_env: dict[str, str]
    """A new node's environment: its Store's and blob store's URLs, its secret."""
    machines: tuple[Machine, ...] = ()
    """The cluster's machines main_service found or started before it serves: they
    become its nodes (see MainService)."""
    list_price: ListPrice = this_machine
    """What its node types cost per hour, unless they say (burla.core.cost)."""


@dataclass(frozen=True)
class Backends:
    """What main_service runs on."""

    store: Store
    blobs: BlobStore
    compute: LocalComputeProvider | GceComputeProvider
    clock: Clock
    images: ImageMaker | None = None
    """Makes the images jobs name or bring a Dockerfile for; None: jobs cannot."""

    async def aclose(self, *, delete_machines: bool = True) -> None:
        """Delete the cluster's machines (waiting STOP_TIMEOUT_S at most), unless told to
        keep them, then close."""
        try:
            if delete_machines:
                with anyio.move_on_after(STOP_TIMEOUT_S):
                    await _delete_machines(self.compute)
        finally:
            await self.compute.aclose()
            await close_store(self.store)


def run_local(
    root: Path, cpus: int, containers: Containers, idle_s: float, compute: LocalComputeProvider
) -> None:
    """Boot the first node before the web stack loads, so that the two load side by side.
    `compute` has its spare started already (see local_start)."""
    token = secrets.token_hex(32)
    sock, address = bind_loopback()
    config = local_config(cpus, standby_image(containers))
    first_type = config.standby.nodes[0].node_type.name
    setup = Setup(
        config=config,
        url=f"http://{address}",
        token=token,
        boot_env=local_boot_env(root, token, containers),
        machines=(Machine(FIRST_NODE, first_type, MachineStatus.BOOTING),),
    )
    clock = WallClock()
    store, blobs = _open_state(setup.boot_env, clock)
    images: ImageMaker = LocalVenvImages(root)
    if containers == "docker":
        from burla.backends.docker.custom import DockerImages

        images = DockerImages()
    backends = Backends(store, blobs, compute, clock, images)
    anyio.run(_boot_first_node, setup, backends)
    mark("main_service has started the first node")
    running.run(_serve_local, root, cpus, setup, backends, sock, idle_s)


async def _boot_first_node(setup: Setup, backends: Backends) -> None:
    await backends.store.put(STANDBY_KEY, setup.config.standby.model_dump(mode="json"))
    await _delete_machines(backends.compute)  # left by a main_service that died
    first_type = setup.config.standby.nodes[0].node_type
    await backends.compute.create(BootSpec(FIRST_NODE, first_type, setup.url, setup.boot_env))


async def _serve_local(
    root: Path, cpus: int, setup: Setup, backends: Backends, sock: socket.socket, idle_s: float
) -> None:
    def started(service: MainService, server: Server, tasks: TaskGroup) -> None:
        info = {
            "url": setup.url,
            "token": setup.token,
            "pid": os.getpid(),
            "cpus": cpus,
            "install": install_stamp(),  # a client of another burla restarts the cluster
        }
        running.write_atomically(root / CLUSTER_FILE, json.dumps(info))
        tasks.start_soon(_stop_when_idle, service, server, idle_s)
        # Ready before the first node says it booted (with the build it runs): a node's
        # boot waits for the answer.
        tasks.start_soon(anyio.to_thread.run_sync, build_id)

    try:
        await _serve(setup, backends, sock, started)
    finally:
        with anyio.CancelScope(shield=True):
            await backends.aclose()
            (root / CLUSTER_FILE).unlink(missing_ok=True)  # last: stopped is gone


async def _stop_when_idle(service: MainService, server: Server, idle_s: float) -> None:
    while True:
        await anyio.sleep(min(5.0, idle_s / 2))
        if service.idle_for(idle_s):
            server.should_exit = True
            return


async def serve_cloud(plan: CloudPlan) -> None:
    from burla.services.main_service.cloud_config import announcement
    from burla.services.retrying import RetryingCompute

    with _listen(plan.host, plan.port) as sock:  # first: a port in use fails before all else
        clock = WallClock()
        images = await _cloud_images(plan)
        store, blobs = _open_state(plan.boot_env, clock)
        backends = Backends(store, blobs, _compute_provider(plan), clock, images)
        stopped = False
        try:
            # An earlier main_service's machines: the live ones become this one's nodes.
            found = await RetryingCompute(backends.compute).list()
            from burla.backends.gcp.prices import list_price_in

            price = list_price_in(plan.gce.zone.rsplit("-", 1)[0])
            setup = Setup(plan.config, plan.url, plan.token, plan.boot_env, tuple(found), price)

            def announce(*_: object) -> None:
                print(announcement(plan), flush=True)

            await _serve(setup, backends, sock, announce, plan.tls)
            stopped = True  # by SIGTERM or SIGINT: told to stop, the cluster goes too
        finally:
            with anyio.CancelScope(shield=True):
                # Stopped by an error, it leaves the machines for the next to take on.
                await backends.aclose(delete_machines=stopped)


async def _cloud_images(plan: CloudPlan) -> ImageMaker | None:
    """With a registry: the default worker images pushed there for the nodes to pull, and
    images made on this machine's Docker engine and pushed there too."""
    if plan.registry is None:
        return None
    from burla.backends.docker.custom import DockerImages
    from burla.backends.docker.image import publish_default_image
    from burla.backends.gcp.registry_logins import credentials_login

    login = credentials_login() if plan.registry_login == "google" else None
    for spec in plan.config.standby.containers:
        await anyio.to_thread.run_sync(
            publish_default_image, plan.registry, spec.python_version, None, login
        )
    return DockerImages(registry=plan.registry, login=login)


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


def _open_state(boot_env: dict[str, str], clock: Clock) -> tuple[Store, BlobStore]:
    """The Store and blob store nodes open too, from the URLs in their boot environment."""
    signing_key = blob_signing_key(boot_env["BURLA_SECRET"])
    # The blob store first: opening it may fail (a signer), and it needs no closing after.
    blobs = open_blobs(boot_env["BURLA_BLOBS_URL"], signing_key, clock)
    return open_store(boot_env["BURLA_STORE_URL"], clock), blobs


async def _serve(
    setup: Setup,
    backends: Backends,
    sock: socket.socket,
    started: Callable[[MainService, Server, TaskGroup], None],
    tls: ServerCertificate | None = None,
) -> None:
    """Serve main_service on `sock` until SIGTERM or SIGINT; `started` once it serves: the
    routes a cold start needs at once, the others once FastAPI is loaded (front)."""
    from burla.core.limits import RequestLimits
    from burla.services import serving
    from burla.services.main_service.front import load_when_quiet, serve_first
    from burla.services.main_service.keep import Keep
    from burla.services.main_service.service import MainService
    from burla.services.retrying import RetryingCompute, resilient

    store, blobs = resilient(backends.store, backends.blobs, os.environ)
    service = MainService(
        config=setup.config,
        store=store,
        blobs=blobs,
        compute=RetryingCompute(backends.compute),
        clock=backends.clock,
        main_url=setup.url,
        boot_env=setup.boot_env,
        token=setup.token,
        machines=setup.machines,
        images=backends.images,
        keep=Keep.from_environ(os.environ),
        list_price=setup.list_price,
    )
    async with anyio.create_task_group() as tasks:
        # Serve once the stored standby definition and jobs are taken back, so no answer
        # shows this process's settings in their place; callers wait in the backlog.
        await service.run(tasks)
        limits = RequestLimits.from_environ(os.environ)
        app, later = serve_first(service, setup.token, limits)
        server = await serving.start(app, sock, tasks, tls)
        mark("main_service serves")
        started(service, server, tasks)
        await load_when_quiet(later, service)
        mark("main_service serves every route")


async def _delete_machines(provider: LocalComputeProvider | GceComputeProvider) -> None:
    """Delete every machine of the cluster, riding over the provider's transient refusals
    (a VM whose node is being deleted already is asked again once that is over)."""
    from burla.services.retrying import RetryingCompute

    compute = RetryingCompute(provider)
    machines = await compute.list()
    async with anyio.create_task_group() as tasks:
        for machine in machines:
            tasks.start_soon(compute.delete, machine.node_id)


def check_docker(image: str) -> None:
    """BackendError unless the Docker engine answers and has `image`."""
    from burla.backends.docker.client import connect
    from burla.backends.docker.image import has_image

    client = connect()
    try:
        if not has_image(client, image):
            raise BackendError(
                f"the Docker engine has no image {image!r}, which the workers run in; "
                "build it once with `burla image build` (as root, about a minute)"
            )
    finally:
        client.close()


def remove_leftover_containers(root: Path) -> None:
    """Remove the Docker containers of this cluster's nodes, which must all be gone."""
    from burla.backends.docker.client import connect
    from burla.backends.docker.cluster import remove_cluster_containers

    client = connect()
    try:
        removed = remove_cluster_containers(client, root)
    finally:
        client.close()
    if removed:
        print(f"removed Docker containers left by this cluster's nodes: {removed}", file=sys.stderr)
