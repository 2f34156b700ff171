"""A Store that stays down: main_service retries, then answers with a clear error that says
what failed and for how long, and serves again once the Store is back."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core import wire
from burla.core.clock import WallClock
from burla.core.errors import TransientBackendError
from burla.core.protocols import Document
from burla.services.retrying import RetryingBlobStore, RetryingStore
from tests.services.memory_main import memory_service, serving

pytestmark = pytest.mark.anyio
TOKEN = "t0ken"
AUTH = {"authorization": f"Bearer {TOKEN}"}


class SwitchableStore(MemoryStore):
    """A memory Store that can be taken down: reads and pushes then fail as unreachable."""

    down = False

    async def get(self, key: str) -> Document | None:
        self._check()
        return await super().get(key)

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        self._check()
        await super().push(queue, items)

    def _check(self) -> None:
        if self.down:
            raise TransientBackendError("the database is unreachable")


def job_body(job_id: str) -> bytes:
    spec = {"n_inputs": 1, "func_cpu": 1, "func_ram": 1}
    return wire.encode_many([({"job_id": job_id, "spec": spec}, b"f"), ({"i": 0}, b"x")])


async def test_a_store_that_stays_down_gives_a_clear_error_and_nothing_hangs() -> None:
    clock = WallClock()
    store = SwitchableStore(clock)
    retried_store = RetryingStore(store, retry_for_s=0.5)
    blobs = RetryingBlobStore(MemoryBlobStore(clock), retry_for_s=0.5)
    async with serving(memory_service(clock, retried_store, blobs), TOKEN) as client:
        store.down = True
        with anyio.fail_after(10):
            answer = await client.post("/jobs", content=job_body("job-down-0001"), headers=AUTH)
        assert answer.status_code >= 500
        said = answer.json()
        assert said["error"] == "BackendError"
        assert "kept failing for" in said["message"]
        assert "the database is unreachable" in said["message"]
        store.down = False
        again = await client.post("/jobs", content=job_body("job-down-0002"), headers=AUTH)
        assert again.status_code == 200
