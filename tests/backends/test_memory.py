"""What only the in-memory backends do: their test helpers (crash, fail), scale, and URLs
signed by one store only."""

from __future__ import annotations

import pytest

from burla.backends.memory import (
    MemoryBlobStore,
    MemoryComputeProvider,
    MemoryContainerRuntime,
    MemoryStore,
)
from burla.core.clock import ManualClock
from burla.core.errors import NotFoundError, SignedUrlError
from burla.core.models import ContainerSpec, NodeType
from burla.core.protocols import BootSpec, MachineStatus

BOOT_S = 3.0

pytestmark = pytest.mark.anyio


async def test_store_drains_a_large_queue() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    await store.push("q", [(f"{n:06d}", b"") for n in range(100_000)])
    first = await store.claim("q", limit=50_000, lease_s=1)
    clock.advance(2)  # every lease has expired; half of them come back in their place
    await store.ack("q", [claim.receipt for claim in first[::2]])
    seen: list[str] = []
    while claims := await store.claim("q", limit=1000, lease_s=60):
        seen.extend(claim.item_id for claim in claims)
        await store.ack("q", [claim.receipt for claim in claims])
    assert seen == [f"{n:06d}" for n in range(1, 50_000, 2)] + [
        f"{n:06d}" for n in range(50_000, 100_000)
    ]


async def test_lease_survives_cleanup_of_acked_items() -> None:
    clock = ManualClock()
    store = MemoryStore(clock)
    await store.push("q", [(f"{n:04d}", b"") for n in range(3000)])
    claims = await store.claim("q", limit=3000, lease_s=10)
    assert await store.ack("q", [claim.receipt for claim in claims[:-1]]) == {
        claim.receipt for claim in claims[:-1]
    }
    assert await store.claim("q", limit=10, lease_s=10) == []
    clock.advance(20)
    [again] = await store.claim("q", limit=10, lease_s=10)
    assert (again.item_id, again.deliveries) == ("2999", 2)


async def test_signed_url_from_another_store_is_refused() -> None:
    ours, theirs = MemoryBlobStore(ManualClock()), MemoryBlobStore(ManualClock())
    await ours.put("k", b"data")
    url = await theirs.signed_url("k", method="GET", expires_s=60)
    assert url.startswith("memory://k?method=GET&expires=")
    with pytest.raises(SignedUrlError, match="signature"):
        await ours.get_signed(url)


async def test_machine_boots_on_the_clock_and_can_fail() -> None:
    clock = ManualClock()
    compute = MemoryComputeProvider(clock, boot_s=BOOT_S)
    node_type = NodeType(name="n2-standard-4", cpus=4, ram_gb=16)
    booting = await compute.create(BootSpec("node-a", node_type, main_url="memory://main"))
    assert (booting.status, booting.address) == (MachineStatus.BOOTING, None)
    clock.advance(BOOT_S)
    running = await compute.get("node-a")
    assert running is not None
    assert (running.status, running.address) == (MachineStatus.RUNNING, "memory://node-a")
    compute.fail("node-a")
    failed = await compute.get("node-a")
    assert failed is not None
    assert failed.status is MachineStatus.FAILED
    with pytest.raises(NotFoundError, match="node-b"):
        compute.fail("node-b")


async def test_crash_returns_what_is_listed_and_needs_a_container() -> None:
    runtime = MemoryContainerRuntime()
    spec = ContainerSpec(image="python:3.11-slim")
    await runtime.start(spec, name="worker-0", port=8080, cpuset=frozenset({0}))
    crashed = runtime.crash("worker-0", exit_code=137)
    assert (crashed.running, crashed.exit_code) == (False, 137)
    assert await runtime.list() == [crashed]
    with pytest.raises(NotFoundError, match="worker-9"):
        runtime.crash("worker-9", exit_code=1)
