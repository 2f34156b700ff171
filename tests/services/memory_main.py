"""main_service on memory backends, reached in-process through its ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core.clock import WallClock
from burla.core.models import ClusterConfig, NodeType
from burla.core.protocols import BlobStore, Store
from burla.services.main_service.app import create_app
from burla.services.main_service.service import MainService

N2 = NodeType(name="n2", cpus=2, ram_gb=8)


def memory_service(
    clock: WallClock, store: Store | None = None, blobs: BlobStore | None = None
) -> MainService:
    """A main_service of one 2-CPU node type, on memory backends unless given others."""
    return MainService(
        config=ClusterConfig(node_types=(N2,)),
        store=store or MemoryStore(clock),
        blobs=blobs or MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )


@asynccontextmanager
async def serving(service: MainService, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """The service running, and a client of its app; it stops when the block ends."""
    transport = httpx.ASGITransport(app=create_app(service, token))
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
            yield client
        tasks.cancel_scope.cancel()
