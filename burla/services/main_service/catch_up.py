"""Results a job's main_service was not told of, taken from the Store.

A node writes its results, then reports them. Results written but never reported (their
node was lost first, or they were told to a main_service that went) are in the Store
and out of the queue: a job taken over, or one that lost a node, reads them from there,
once at once and then for as long as a lost node may still write some.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from burla.core import inputs as i
from burla.core import stream_wire
from burla.core.backoff import Backoff
from burla.core.clock import Clock
from burla.core.protocols import BlobStore, Store
from burla.services.main_service.jobs import JobRun
from burla.services.result_pages import read_results
from burla.services.store_keys import LEASE_S, results_prefix

CATCH_UP_FIRST_S = 1.0
CATCH_UP_MAX_S = 10.0
"""A job taken over after a restart, or one that lost a node, looks for results it was
not told of this often (at first more often)."""
CATCH_UP_FOR_S = 2 * LEASE_S
"""For how long it looks: a node that is gone (or cut off) may have written results it
never reported, until its machine is gone; once its leases have ended its inputs run
again elsewhere, so stopping costs no result."""

Record = Callable[[JobRun, i.InputEvent], Awaitable[None]]
"""Hands an event to the job's input machine and carries out its commands."""


class CatchUp:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        clock: Clock,
        spawn: Callable[..., None],
        record: Record,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self._spawn = spawn
        self._record = record

    async def once(self, run: JobRun) -> None:
        """Take in the job's results that are in the Store but not in its input machine."""
        after = ""
        while docs := await self.store.list(results_prefix(run.spec.job_id), after=after):
            after = docs[-1].key
            for doc in docs:
                for index, kind, payload in await read_results(self.blobs, doc):
                    if run.state.finished:
                        return
                    if not run.machine.inputs[index].status.finished:
                        run.publish(stream_wire.JobResult(index, kind), payload)
                        await self._record(run, i.InputRecorded(index, kind == "ok"))

    def keep_looking(self, run: JobRun) -> None:
        """Catch up in a second, then after pauses that double, for CATCH_UP_FOR_S: one
        task per job does it, starting over for each new reason."""
        run.look_in_store_until = self.clock.now() + CATCH_UP_FOR_S
        if run.look_in_store_again is None:
            run.look_in_store_again = anyio.Event()
            self._spawn(self._looking, run)
        else:
            run.look_in_store_again.set()

    async def _looking(self, run: JobRun) -> None:
        assert run.look_in_store_again is not None
        pauses = Backoff(CATCH_UP_FIRST_S, CATCH_UP_MAX_S)
        try:
            while not run.state.finished and self.clock.now() < run.look_in_store_until:
                with anyio.move_on_after(pauses.pause()):
                    await run.look_in_store_again.wait()
                if run.look_in_store_again.is_set():
                    run.look_in_store_again = anyio.Event()
                    pauses.reset()
                    continue
                await self.once(run)
        finally:
            run.look_in_store_again = None
