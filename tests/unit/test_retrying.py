"""Transient backend failures: retried with growing pauses until they pass or time runs
out, and injected on purpose (BURLA_FAULTS) without losing or doubling anything."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from burla.backends.faults import FaultPlan, FaultyBlobStore, FaultyStore, fault_plan
from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core.clock import WallClock
from burla.core.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidRequestError,
    TransientBackendError,
)
from burla.services.retrying import (
    PATIENT_PAUSE_S,
    PatientStore,
    RetryingBlobStore,
    RetryingStore,
    patiently,
    retried,
)

pytestmark = pytest.mark.anyio


async def test_a_transient_failure_is_tried_again_until_it_passes() -> None:
    tries = []

    async def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise TransientBackendError("unreachable for a moment")
        return "done"

    assert await retried("a call", flaky) == "done"
    assert len(tries) == 3


async def test_a_failure_that_does_not_pass_ends_as_a_clear_backend_error() -> None:
    tries = []

    async def down() -> None:
        tries.append(1)
        raise TransientBackendError("the server is down")

    with pytest.raises(
        BackendUnavailableError, match=r"a call kept failing for .* tries.*server is down"
    ):
        await retried("a call", down, retry_for_s=0.5)
    assert len(tries) >= 3


def test_work_done_patiently_waits_out_an_outage_longer_than_the_retries() -> None:
    """Under virtual time: a Store down for ten minutes, then back."""

    async def main() -> tuple[list[str], float, float]:
        store = MemoryStore(WallClock())
        down_until = trio.current_time() + 600

        class Outage(MemoryStore):
            async def put(self, key, data, *, if_version=None):
                if trio.current_time() < down_until:
                    raise TransientBackendError("the database is unreachable")
                return await store.put(key, data, if_version=if_version)

        patient = PatientStore(RetryingStore(Outage(WallClock())))
        started = trio.current_time()
        written = await patient.put("doc", {"n": 1})
        return [written.key], trio.current_time() - started, down_until - started

    keys, took, outage = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert keys == ["doc"]
    assert outage <= took <= outage + PATIENT_PAUSE_S + 3  # back within a pause or two


def test_patiently_says_each_wait_and_lets_other_errors_through(capsys) -> None:
    tries = []

    async def down_then_refused() -> None:
        tries.append(1)
        if len(tries) == 1:
            raise BackendUnavailableError("the Store's put kept failing for 30.0 s")
        raise ConflictError("someone else wrote it")

    async def main() -> None:
        with pytest.raises(ConflictError):
            await patiently("writing a record", down_then_refused)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(tries) == 2
    assert "writing a record waits for its backend" in capsys.readouterr().err


async def test_other_errors_are_not_retried() -> None:
    tries = []

    async def lost_race() -> None:
        tries.append(1)
        raise ConflictError("someone else wrote it")

    with pytest.raises(ConflictError):
        await retried("a call", lost_race)
    assert len(tries) == 1


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        ("", None),
        ("store=0.1", FaultPlan(store=0.1)),
        ("store=0.05, blobs=0.2,seed=3,log=/tmp/f", FaultPlan(0.05, 0.2, 3, "/tmp/f")),
    ],
)
def test_fault_plans_are_read_from_the_environment(text, plan) -> None:
    assert fault_plan({"BURLA_FAULTS": text}) == plan


@pytest.mark.parametrize("text", ["store=lots", "stor=0.1", "blobs=1.5"])
def test_a_bad_fault_plan_is_refused(text) -> None:
    with pytest.raises(InvalidRequestError, match="BURLA_FAULTS"):
        fault_plan({"BURLA_FAULTS": text})


async def test_a_queue_under_injected_failures_loses_nothing_and_doubles_nothing(
    tmp_path,
) -> None:
    clock = WallClock()
    log = tmp_path / "faults.log"
    plan = FaultPlan(store=0.3, blobs=0.3, seed=11, log=str(log))
    inner = MemoryStore(clock)
    store = RetryingStore(FaultyStore(inner, plan), retry_for_s=60)
    blobs = RetryingBlobStore(FaultyBlobStore(MemoryBlobStore(clock), plan), retry_for_s=60)
    items = [(str(n), f"input {n}".encode()) for n in range(200)]
    await store.push("q", items)
    await store.push("q", items)  # a client's retry of the same push
    done: dict[str, bytes] = {}
    while len(done) < len(items):
        for claim in await store.claim("q", limit=7, lease_s=60):
            await blobs.put(f"out/{claim.item_id}", claim.data.upper())
            await store.put_many({f"r/{claim.item_id}": {"v": claim.data}}, create_only=True)
            await store.ack("q", [claim.receipt])
            done[claim.item_id] = claim.data
    assert await inner.claim("q", limit=1000, lease_s=0) == []  # every item acked
    results = await inner.list("r/", limit=1000)
    assert sorted(d.key for d in results) == sorted(f"r/{n}" for n, _ in items)
    assert {d.key[2:]: d.data["v"] for d in results} == dict(items)
    assert len(await blobs.list("out/")) == len(items)
    injected = log.read_text().splitlines()
    assert len(injected) > 50
    assert {line.split()[-1] for line in injected} == {"before", "after"}
