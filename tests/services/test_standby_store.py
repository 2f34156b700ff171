"""main_service runs by the standby definition in the Store; its settings only seed it."""

from __future__ import annotations

import anyio
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core.clock import WallClock
from burla.core.errors import ImageError
from burla.core.models import ClusterConfig, NodeType, StandbyDefinition, StandbyGroup
from burla.core.protocols import Store
from burla.services.main_service.keep import Keep
from burla.services.main_service.service import MainService
from burla.services.store_keys import STANDBY_KEY
from tests.services.memory_main import serving

pytestmark = pytest.mark.anyio

N2 = NodeType(name="n2", cpus=2, ram_gb=8)
SEEDED = StandbyDefinition(nodes=(StandbyGroup(node_type=N2, count=1),))


class KnownImages:
    """Images this cluster can run: their names and Python versions."""

    def __init__(self, pythons: dict[str, str]) -> None:
        self.pythons = pythons
        self.forgotten: list[str] = []

    async def build(self, recipe: str, context: bytes | None = None) -> str:
        raise ImageError("this cluster builds no images")

    async def forget(self, image: str) -> None:
        self.forgotten.append(image)

    async def check(self, image: str) -> str:
        if image not in self.pythons:
            raise ImageError(f"no image {image!r}")
        return self.pythons[image]


def service_on(
    store: Store, clock: WallClock, images: KnownImages | None = None, images_kept: int = 4
) -> MainService:
    """A main_service whose settings say: one 2-CPU node, the default image."""
    return MainService(
        config=ClusterConfig(node_types=(N2,), standby=SEEDED),
        store=store,
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
        images=images or KnownImages({"registry.test/tools:1": "3.11"}),
        keep=Keep(images=images_kept),
    )


async def started(service: MainService) -> StandbyDefinition:
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        tasks.cancel_scope.cancel()
    return service.cluster.config.standby


async def test_the_settings_seed_a_store_that_has_no_definition() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    assert await started(service_on(store, clock)) == SEEDED
    doc = await store.get(STANDBY_KEY)
    assert doc is not None
    assert StandbyDefinition.model_validate(doc.data) == SEEDED


async def test_a_definition_set_through_the_api_survives_a_restart() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    wanted = {"nodes": [{"node_type": N2.model_dump(mode="json"), "count": 3}]}
    async with serving(service_on(store, clock), "s") as client:
        answer = await client.put("/standby", json=wanted, headers={"Authorization": "Bearer s"})
        assert answer.status_code == 200, answer.text
    standby = await started(service_on(store, clock))  # its settings still say one node
    assert [(g.node_type, g.count) for g in standby.nodes] == [(N2, 3)]


async def test_an_image_a_job_added_survives_a_restart() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    first = service_on(store, clock)
    async with anyio.create_task_group() as tasks:
        await first.run(tasks)
        await first.standby.add("registry.test/tools:1")
        tasks.cancel_scope.cancel()
    standby = await started(service_on(store, clock))
    assert "registry.test/tools:1" in standby.images
    added = next(c for c in standby.containers if c.image == "registry.test/tools:1")
    assert added.python_version == "3.11"


async def test_a_stored_definition_that_no_longer_reads_is_replaced_and_said(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    await store.put(STANDBY_KEY, {"nodes": [{"node_type": "no such shape", "count": -1}]})
    assert await started(service_on(store, clock)) == SEEDED
    assert "not a standby definition" in capsys.readouterr().err
    doc = await store.get(STANDBY_KEY)
    assert doc is not None
    assert StandbyDefinition.model_validate(doc.data) == SEEDED


async def test_images_added_for_jobs_are_kept_within_the_limit_least_recently_used_first() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    images = KnownImages({f"registry.test/{name}:1": "3.11" for name in "abc"})
    service = service_on(store, clock, images, images_kept=2)
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        for name in "aba":  # a is used again: b is now the least recently used
            await service.standby.add(f"registry.test/{name}:1")
        assert images.forgotten == []
        await service.standby.add("registry.test/c:1")
        tasks.cancel_scope.cancel()
    assert images.forgotten == ["registry.test/b:1"]
    kept = ["registry.test/a:1", "registry.test/c:1"]
    assert [c.image for c in service.cluster.config.standby.containers if c.from_job] == kept
    standby = await started(service_on(store, clock, images, images_kept=2))
    assert [c.image for c in standby.containers if c.from_job] == kept, "kept in the Store"
    assert SEEDED.containers == tuple(c for c in standby.containers if not c.from_job)


async def test_images_within_the_limit_all_stay() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    images = KnownImages({f"registry.test/{name}:1": "3.11" for name in "abc"})
    service = service_on(store, clock, images, images_kept=4)
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        for name in "abc":
            await service.standby.add(f"registry.test/{name}:1")
        tasks.cancel_scope.cancel()
    assert images.forgotten == []
    added = [c.image for c in service.cluster.config.standby.containers if c.from_job]
    assert added == [f"registry.test/{name}:1" for name in "abc"]


async def test_an_image_a_running_job_uses_is_kept_beyond_the_limit() -> None:
    clock = WallClock()
    store = MemoryStore(clock)
    images = KnownImages({f"registry.test/{name}:1": "3.11" for name in "ab"})
    service = service_on(store, clock, images, images_kept=1)
    service.standby.running_images = lambda: {"registry.test/a:1"}
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        await service.standby.add("registry.test/a:1")
        await service.standby.add("registry.test/b:1")
        tasks.cancel_scope.cancel()
    assert images.forgotten == []
    assert {"registry.test/a:1", "registry.test/b:1"} <= service.cluster.config.standby.images
