"""Run the embedded local cluster's main_service: `python -m burla.services.main_service`.

The cluster's state lives in one directory (see burla.client.local): the Store, the blob
store, the nodes' directories and `cluster.json`, which tells clients where to connect.
Only one main_service runs per directory; a second one exits at once.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
from pathlib import Path

import anyio

from burla.backends.local.blobs import DirectoryBlobStore
from burla.backends.local.compute import LocalComputeProvider
from burla.backends.local.store import SqliteStore
from burla.core.clock import WallClock
from burla.core.models import (
    ClusterConfig,
    ContainerSpec,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.services import http as http_clients
from burla.services import serving
from burla.services.main_service.app import create_app
from burla.services.main_service.service import MainService
from burla.services.node_service.__main__ import LOCAL_DEFAULT_IMAGE

CLUSTER_FILE = "cluster.json"
MAX_LOCAL_NODES = 4


def local_config(cpus: int) -> ClusterConfig:
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
        containers=(ContainerSpec(image=LOCAL_DEFAULT_IMAGE),),
    )
    return ClusterConfig(
        standby=standby,
        max_nodes=MAX_LOCAL_NODES,
        max_nodes_per_job=1,
        release="recycle",
        refill_standby=False,
    )


async def serve(root: Path, cpus: int, idle_s: float) -> None:
    clock = WallClock()
    token = secrets.token_hex(32)
    sock, address = serving.bind_loopback()
    url = f"http://{address}"
    store = SqliteStore(root / "store.db", clock)
    blobs = DirectoryBlobStore(root / "blobs", bytes.fromhex(token), clock)
    compute = LocalComputeProvider(root)
    for machine in await compute.list():  # left by a main_service that died
        await compute.delete(machine.node_id)
    boot_env = {
        "BURLA_STORE_URL": f"sqlite://{root / 'store.db'}",
        "BURLA_BLOBS_URL": f"file://{root / 'blobs'}",
        "BURLA_SECRET": token,
        "BURLA_LOCAL_DIR": str(root),
    }
    headers = {"authorization": f"Bearer {token}"}
    async with http_clients.async_client(headers=headers) as http:
        service = MainService(
            config=local_config(cpus),
            store=store,
            blobs=blobs,
            compute=compute,
            clock=clock,
            main_url=url,
            boot_env=boot_env,
            http=http,
        )
        try:
            async with anyio.create_task_group() as tasks:
                server = await serving.start(create_app(service, token), sock, tasks)
                await service.run(tasks)
                info = {"url": url, "token": token, "pid": os.getpid(), "cpus": cpus}
                serving.write_atomically(root / CLUSTER_FILE, json.dumps(info))
                tasks.start_soon(_stop_when_idle, service, server, idle_s)
        finally:
            with anyio.CancelScope(shield=True):
                await compute.aclose()
                store.close()
                (root / CLUSTER_FILE).unlink(missing_ok=True)  # last: "stopped" means gone


async def _stop_when_idle(service: MainService, server: serving.Server, idle_s: float) -> None:
    while True:
        await anyio.sleep(min(5.0, idle_s / 2))
        busy = any(not run.state.finished for run in service.jobs.values())
        if not busy and service.clock.now() - service.last_activity > idle_s:
            server.should_exit = True
            return


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m burla.services.main_service")
    parser.add_argument("--local-dir", type=Path, required=True)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--idle-s", type=float, default=1800.0)
    parser.add_argument(
        "--detach", action="store_true", help="run in the background, in a session of its own"
    )
    args = parser.parse_args()
    if args.detach:
        if os.fork():
            os._exit(0)  # the caller waits for this process only, not for the cluster
        os.setsid()
    root: Path = args.local_dir
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "main.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another main_service owns this directory
        anyio.run(serve, root, args.cpus, args.idle_s)


if __name__ == "__main__":
    main()
