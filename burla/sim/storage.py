"""A simulated cluster's Store and blob store: memory backends, which the services see
answering as slowly as the scenario's `store_profile` says, failing now and then where
the scenario says so, behind the retries production has."""

from __future__ import annotations

import random

from burla.backends.faults import FaultPlan, FaultyBlobStore, FaultyStore
from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core.protocols import BlobStore, Store
from burla.services.result_pages import stored_results
from burla.services.retrying import RetryingBlobStore, RetryingStore
from burla.sim.clock import Timers, VirtualClock
from burla.sim.latency import CallStats, SlowBlobStore, SlowStore
from burla.sim.profiles import BLOBS_FOR, STORES
from burla.sim.scenario import Scenario


class SimStorage:
    def __init__(self, scenario: Scenario, clock: VirtualClock, timers: Timers) -> None:
        seed = scenario.seed
        self.store = MemoryStore(clock)
        self.blobs = MemoryBlobStore(clock)
        self.calls = CallStats()
        """The services' Store and blob store calls, and the time they took."""
        self.slow_store: SlowStore | None = None
        self.slow_blobs: SlowBlobStore | None = None
        store: Store = self.store
        blobs: BlobStore = self.blobs
        profile = scenario.store_profile
        if profile != "memory" or scenario.service_cpu.measure:
            rng = random.Random(f"{seed}:latency")
            store = self.slow_store = SlowStore(store, STORES[profile], timers, rng, self.calls)
            blobs = self.slow_blobs = SlowBlobStore(
                blobs, BLOBS_FOR[profile], timers, rng, self.calls
            )
        plan = FaultPlan(store=scenario.store_failures, blobs=scenario.blob_failures, seed=seed)
        self.faulty_store = (
            FaultyStore(store, plan, random.Random(f"{seed}:store")) if plan.store else None
        )
        self.faulty_blobs = (
            FaultyBlobStore(blobs, plan, random.Random(f"{seed}:blobs")) if plan.blobs else None
        )
        store = self.faulty_store or store
        blobs = self.faulty_blobs or blobs
        # The services see them behind the retries production has, when they may fail.
        self.services_store: Store = store
        if store is not self.store:
            retries = random.Random(f"{seed}:retries")
            self.services_store = RetryingStore(store, rng=retries)
        self.services_blobs: BlobStore = blobs
        if blobs is not self.blobs:
            retries = random.Random(f"{seed}:blob-retries")
            self.services_blobs = RetryingBlobStore(blobs, rng=retries)

    async def results_stored(self, job_id: str) -> dict[int, str]:
        """The kind of each result of the job the Store holds ("ok" or a failure's), by
        input index."""
        stored = await stored_results(self.store, self.blobs, job_id)
        return {index: kind for index, (kind, _) in stored.items()}
