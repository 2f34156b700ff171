"""What the node tells main_service: events in the order seen, in batches, each batch's
finished results made durable in the Store (in pages, see result_pages) before
main_service hears of them."""

from __future__ import annotations

import math
import sys
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from burla.core import report_wire
from burla.core.clock import Clock
from burla.core.errors import BackendUnavailableError
from burla.core.link_wire import Report
from burla.core.protocols import BlobStore, Claim, Store
from burla.core.trace import mark
from burla.services.handed_inputs import is_handed
from burla.services.node_service.held_runs import HeldRuns
from burla.services.result_pages import write_succeeded
from burla.services.retrying import PATIENT_PAUSE_S
from burla.services.store_keys import queue_name

REPORT_INTERVAL_S = 0.003
"""Shortest time between two reports to main_service."""
BUSY_REPORT_INTERVAL_S = 0.012
BUSY_RESULTS = 64
"""...and while reports carry BUSY_RESULTS results or more. A report costs the node a
write of a page of results and main_service and its clients a wake-up each, whatever it
holds: a node busy with short inputs reports less often, with more in each. Its last
results go at the short interval again (hurry)."""

QUIET_EVENT_WITHIN_S = 0.2
"""An event that is not urgent (which worker holds which inputs) rides with the next
report, but goes on its own after this long: main_service needs it to put a lost node's
inputs back in the queue at once, rather than after their leases run out."""

SendReport = Callable[[Report, bytes], Awaitable[None]]
"""Sends one report, and its results' bytes, to main_service."""


@dataclass
class Finished:
    """Inputs of a job that succeeded here, as their worker sent them: input
    `indices[n]` has the result `results[n]` and was claimed under `receipts[n]`."""

    job_id: str
    indices: list[int]
    results: list[bytes]
    receipts: list[str]


class Reporter:
    def __init__(
        self, node_id: str, store: Store, blobs: BlobStore, report: SendReport, clock: Clock
    ) -> None:
        self.node_id = node_id
        self.store = store
        self.blobs = blobs
        self.report = report
        self.clock = clock
        self.runs = HeldRuns()
        self._events: list[report_wire.NodeReport] = []
        self._payloads: list[bytes] = []
        self._done: list[Finished] = []
        self._saving: list[list[Finished]] = []
        """Batches of finished results being written to the Store now, not acked yet."""
        self._acks: list[tuple[str, str]] = []
        """(job, receipt) of the items the node is done with, for the Store to remove."""
        self._report_ready = anyio.Event()
        self.news = False
        """Urgent events are queued that no report has carried yet."""
        self._flushing = False
        self._flush_over = anyio.Event()
        """Set as the flush under way ends (and replaced by a new one)."""
        self._last_report = -math.inf
        self._busy = False
        """The last report carried BUSY_RESULTS results or more, and no hurry came since."""
        self._pace_s = 0.0
        """The shortest time between two reports of the node's job while it is busy
        (link_wire.Assign.results_every_s)."""
        self._paced = False
        """The last report went while the node was busy with a paced job."""
        self._hurried = False
        self._sooner = anyio.Event()
        """Set by hurry, for run's loop to wait the short interval only."""
        self._quiet_due = math.inf
        """When the oldest event no report has carried must go, news or not."""

    def event(
        self, event: report_wire.NodeReport, payload: bytes = b"", *, urgent: bool = True
    ) -> None:
        """Queue an event for main_service; one that is not urgent waits for the next
        report, or QUIET_EVENT_WITHIN_S. The task that queued an urgent one then calls
        report_news."""
        self._events.append(event)
        if payload:
            self._payloads.append(payload)
        if urgent:
            self.news = True
        elif self._quiet_due == math.inf:
            self._quiet_due = self.clock.now() + QUIET_EVENT_WITHIN_S
            self._report_ready.set()  # run's loop waits until then

    def succeeded(self, job_id: str, index: int, data: bytes, claim: Claim) -> None:
        """An input's result, to be written to the Store (and its claim acked) before the
        report that carries it goes."""
        self.finished(Finished(job_id, [index], [data], [claim.receipt]))

    def finished(self, batch: Finished) -> None:
        """Results of inputs that succeeded, as succeeded takes one."""
        if batch.indices:
            self._done.append(batch)

    def hurry(self) -> None:
        """The node holds no input it has not finished: the results it reports next are
        a job's last here, which go at the short interval (REPORT_INTERVAL_S)."""
        self._busy, self._paced, self._hurried = False, False, True
        self._sooner.set()

    def pace(self, every_s: float) -> None:
        """Report the next job's results about every `every_s` at most while it keeps the
        node busy: a big job's nodes together write few pages of results a second. Each
        node's pace is its own, from half to one and a half times `every_s`, so that nodes
        that started together do not write together."""
        self._pace_s = every_s * (0.5 + zlib.crc32(self.node_id.encode()) / (1 << 32))

    def _interval(self) -> float:
        interval = BUSY_REPORT_INTERVAL_S if self._busy else REPORT_INTERVAL_S
        return max(interval, self._pace_s) if self._paced else interval

    async def report_news(self) -> None:
        """Report as soon as there is news, from the task that heard it (no wake-up of
        another task per result), but at most once per interval (REPORT_INTERVAL_S, or
        BUSY_REPORT_INTERVAL_S while busy) and one report at a time: what comes meanwhile
        is left to run's loop, so batches grow."""
        if self._flushing or self.clock.now() < self._last_report + self._interval():
            self._report_ready.set()
        elif self.news:
            await self.flush()

    async def run(self) -> None:
        """Report the news report_news left (once the interval has passed, or once the
        report on its way is out), and quiet events no report carried in time."""
        while True:
            with anyio.move_on_after(self._quiet_due - self.clock.now()):
                await self._report_ready.wait()
            if self._report_ready.is_set():
                self._report_ready = anyio.Event()
            if self.clock.now() >= self._quiet_due:
                self.news, self._quiet_due = True, math.inf  # now, or once the one in flight is out
            # A hurry meanwhile cuts the wait to the short interval.
            while (wait := self._last_report + self._interval() - self.clock.now()) > 0:
                with anyio.move_on_after(wait):
                    await self._sooner.wait()
                if self._sooner.is_set():
                    self._sooner = anyio.Event()
            if self.news and not self._flushing:
                await self.flush()

    async def flush(self) -> None:
        """Make finished results durable, then tell main_service everything new."""
        self._flushing, self.news, self._last_report = True, False, self.clock.now()
        self._quiet_due = math.inf
        try:
            await self._flush()
        finally:
            self._flushing = False
            self._flush_over.set()
            self._flush_over = anyio.Event()
            if self.news:
                self._report_ready.set()  # what came meanwhile goes next

    def unacked(self, job_id: str) -> list[str]:
        """Receipts of the job's finished inputs not acked yet: their leases are kept
        until their results are in the Store (a throttled write may take longer)."""
        batches = [self._done, *self._saving]
        done = [r for batch in batches for f in batch if f.job_id == job_id for r in f.receipts]
        return done + [receipt for job, receipt in self._acks if job == job_id]

    async def save_finished(self) -> list[str]:
        """Write the finished results no report has carried to the Store, without telling
        main_service (the node is going away); their receipts. None of them with the
        Store down: their inputs run again elsewhere."""
        done, self._done = self._done, []
        try:
            return await self._save(done)
        except BackendUnavailableError as error:
            count = sum(len(batch.indices) for batch in done)
            print(f"node_service: {count} results could not be kept: {error}", file=sys.stderr)
            return []

    async def _save(self, done: list[Finished]) -> list[str]:
        """Write finished results to the Store, then ack what they end: their inputs'
        items, and the runs they were the last of. The receipts acked."""
        by_job: dict[str, list[Finished]] = {}
        for batch in done:
            by_job.setdefault(batch.job_id, []).append(batch)
        self._saving.append(done)
        try:
            for job_id, batches in by_job.items():
                indices = [i for batch in batches for i in batch.indices]
                results = [r for batch in batches for r in batch.results]
                receipts = [r for batch in batches for r in batch.receipts]
                await write_succeeded(self.store, self.blobs, job_id, indices, results, receipts)
            # Durable: from here on their inputs are settled, whatever the acks do. The
            # inputs of a run share its receipt: counted together. An input handed out
            # with its assignment has no queue item to ack.
            for batch in done:
                for receipt, count in Counter(batch.receipts).items():
                    if is_handed(receipt):
                        continue
                    if not self.runs.holds(receipt) or self.runs.ended(receipt, count):
                        self._acks.append((batch.job_id, receipt))
        finally:
            self._saving = [batch for batch in self._saving if batch is not done]
        return await self._ack()

    async def _ack(self) -> list[str]:
        """Remove the items the node is done with from their queues; what the Store does
        not take now (their leases are still renewed) waits for the next report."""
        acks, self._acks = self._acks, []
        by_job: dict[str, list[str]] = {}
        for job_id, receipt in acks:
            by_job.setdefault(job_id, []).append(receipt)
        try:
            for job_id, receipts in by_job.items():
                await self.store.ack(queue_name(job_id), receipts)
        except BackendUnavailableError as error:
            self._acks = acks + self._acks
            self._quiet_due = min(self._quiet_due, self.clock.now() + PATIENT_PAUSE_S)
            self._report_ready.set()  # run's loop tries again then
            print(f"node_service: acks wait for the Store: {error}", file=sys.stderr)
            return []
        return [receipt for _, receipt in acks]

    async def _flush(self) -> None:
        events, payloads, done = self._events, self._payloads, self._done
        self._events, self._payloads, self._done = [], [], []
        self._busy = sum(len(batch.indices) for batch in done) >= BUSY_RESULTS
        self._busy = self._busy and not self._hurried
        self._paced = self._pace_s > 0 and not self._hurried
        self._hurried = False
        try:
            await self._save(done)
        except BackendUnavailableError as error:
            # Nothing is told before its results are durable: all of it waits, with what
            # comes meanwhile behind it, for a try once the Store may be back.
            self._events, self._payloads = events + self._events, payloads + self._payloads
            self._done = done + self._done
            self._quiet_due = self.clock.now() + PATIENT_PAUSE_S
            self._report_ready.set()  # run's loop waits until then
            print(f"node_service: results wait for the Store: {error}", file=sys.stderr)
            return
        mark("node stored results")
        if events:
            report = Report(self.node_id, [event.to_json() for event in events])
            await self.report(report, b"".join(payloads))

    async def report_finished(self) -> None:
        """Make every result finished so far durable, and report it, now (a job ends here:
        a job that resumes it reads its results). Results the Store does not take wait
        for the next try, as any do."""
        while self._flushing:
            await self._flush_over.wait()
        if self._done or self.news:
            await self.flush()
