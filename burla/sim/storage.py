"""A simulated cluster's Store and blob store: memory backends, which the services see
failing now and then where the scenario says so, behind the retries production has."""

from __future__ import annotations

import random

from burla.backends.faults import FaultPlan, FaultyBlobStore, FaultyStore
from burla.backends.memory import MemoryBlobStore, MemoryStore
from burla.core.protocols import BlobStore, Store
from burla.services.retrying import RetryingBlobStore, RetryingStore
from burla.services.store_keys import results_prefix
from burla.sim.clock import VirtualClock
from burla.sim.scenario import Scenario


class SimStorage:
    def __init__(self, scenario: Scenario, clock: VirtualClock) -> None:
        seed = scenario.seed
        self.store = MemoryStore(clock)
        self.blobs = MemoryBlobStore(clock)
        plan = FaultPlan(store=scenario.store_failures, blobs=scenario.blob_failures, seed=seed)
        self.faulty_store = (
            FaultyStore(self.store, plan, random.Random(f"{seed}:store")) if plan.store else None
        )
        self.faulty_blobs = (
            FaultyBlobStore(self.blobs, plan, random.Random(f"{seed}:blobs"))
            if plan.blobs
            else None
        )
        # The services see them behind the retries production has, when they fail.
        self.services_store: Store = self.store
        if self.faulty_store is not None:
            retries = random.Random(f"{seed}:retries")
            self.services_store = RetryingStore(self.faulty_store, rng=retries)
        self.services_blobs: BlobStore = self.blobs
        if self.faulty_blobs is not None:
            retries = random.Random(f"{seed}:blob-retries")
            self.services_blobs = RetryingBlobStore(self.faulty_blobs, rng=retries)

    async def results_stored(self, job_id: str) -> int:
        """How many results of the job the Store holds."""
        count, after = 0, ""
        while docs := await self.store.list(results_prefix(job_id), after=after, limit=1000):
            count += len(docs)
            after = docs[-1].key
        return count
