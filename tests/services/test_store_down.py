"""A Store that stays down: main_service retries, then answers with a clear error that says
what failed and for how long, and serves again once the Store is back."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest
import trio
import trio.testing

from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core import report_wire, wire
from burla.core.clock import WallClock
from burla.core.errors import TransientBackendError
from burla.core.protocols import Document
from burla.services.result_pages import stored_results
from burla.services.retrying import RetryingBlobStore, RetryingStore
from burla.services.store_keys import job_key, queue_name, results_prefix
from burla.sim.clock import VirtualClock
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
        assert said["error"] == "BackendUnavailableError"
        assert "kept failing for" in said["message"]
        assert "the database is unreachable" in said["message"]
        store.down = False
        again = await client.post("/jobs", content=job_body("job-down-0002"), headers=AUTH)
        assert again.status_code == 200


class DownForWrites(SwitchableStore):
    """Also fails writes, acks and renewals while down."""

    async def put(self, key, data, *, if_version=None):
        self._check()
        return await super().put(key, data, if_version=if_version)

    async def put_many(self, docs, *, create_only=False):
        self._check()
        return await super().put_many(docs, create_only=create_only)

    async def ack(self, queue, receipts):
        self._check()
        return await super().ack(queue, receipts)


def test_a_nodes_report_is_carried_out_once_the_store_is_back() -> None:
    """Under virtual time: a worker dies while the Store is down for five minutes, far
    longer than a call is retried. main_service does not end; the input's failure and the
    job's end are written once the Store is back."""

    async def main() -> tuple[str, dict[int, tuple[str, bytes]], dict]:
        clock = VirtualClock()
        store = DownForWrites(clock)
        blobs = MemoryBlobStore(clock)
        service = memory_service(clock, RetryingStore(store), blobs)
        async with serving(service, TOKEN) as client:
            answer = await client.post("/jobs", content=job_body("job-down-0003"), headers=AUTH)
            assert answer.status_code == 200
            (claim,) = await store.claim(queue_name("job-down-0003"), limit=1, lease_s=3600)
            claimed = report_wire.ClaimReport("job-down-0003", "w", (0,), (claim.receipt,))
            died = report_wire.DeathReport("job-down-0003", "w", 0, False)
            store.down = True
            async with trio.open_nursery() as tasks:
                events = [claimed.to_json(), died.to_json()]
                tasks.start_soon(service.job_driver.report, "node-1", events, b"")
                await trio.sleep(300)
                assert await store.list(results_prefix("job-down-0003")) == []  # not yet
                store.down = False
            record = await store.get(job_key("job-down-0003"))
            assert record is not None
            stored = await stored_results(store, blobs, "job-down-0003")
            return service.jobs["job-down-0003"].state.value, stored, record.data

    state, stored, record = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert state == "failed"
    assert list(stored) == [0]
    assert stored[0][0] == "worker_died"
    assert record["state"] == "failed"
