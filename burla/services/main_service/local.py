"""The embedded local cluster's main_service, once its first node is booting."""

from __future__ import annotations

import json
import os

import anyio

from burla.backends.local.blobs import DirectoryBlobStore
from burla.backends.local.images import LocalVenvImages
from burla.core.clock import WallClock
from burla.core.protocols import ImageMaker
from burla.services import serving
from burla.services.cluster_keys import blob_signing_key, node_secret
from burla.services.main_service.app import create_app
from burla.services.main_service.local_start import FIRST_NODE, LocalStart
from burla.services.main_service.service import MainService
from burla.services.retrying import resilient

CLUSTER_FILE = "cluster.json"


async def serve(start: LocalStart, idle_s: float) -> None:
    clock = WallClock()
    signing_key = blob_signing_key(node_secret(start.token))
    directory = DirectoryBlobStore(start.root / "blobs", signing_key, clock)
    images: ImageMaker = LocalVenvImages(start.root)
    if start.boot_env["BURLA_CONTAINERS"] == "docker":
        from burla.backends.docker.custom import DockerImages

        images = DockerImages()
    store, blobs = resilient(start.store, directory, os.environ)
    service = MainService(
        config=start.config,
        store=store,
        blobs=blobs,
        compute=start.compute,
        clock=clock,
        main_url=start.url,
        boot_env=start.boot_env,
        token=start.token,
        booting=(FIRST_NODE,),
        images=images,
    )
    try:
        async with anyio.create_task_group() as tasks:
            server = await serving.start(create_app(service, start.token), start.sock, tasks)
            await service.run(tasks)
            info = {"url": start.url, "token": start.token, "pid": os.getpid()}
            info["cpus"] = start.cpus
            serving.write_atomically(start.root / CLUSTER_FILE, json.dumps(info))
            tasks.start_soon(_stop_when_idle, service, server, idle_s)
    finally:
        with anyio.CancelScope(shield=True):
            await start.compute.aclose()
            start.store.close()
            (start.root / CLUSTER_FILE).unlink(missing_ok=True)  # last: stopped is gone


async def _stop_when_idle(service: MainService, server: serving.Server, idle_s: float) -> None:
    while True:
        await anyio.sleep(min(5.0, idle_s / 2))
        busy = any(not run.state.finished for run in service.jobs.values())
        if not busy and service.clock.now() - service.last_activity > idle_s:
            server.should_exit = True
            return
