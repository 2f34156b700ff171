"""A Store and a blob store that take the time, and keep the limits, of the backend a
scenario's profile names (burla.sim.profiles).

Each call waits out its round trips in virtual time, then is carried out. A round trip
is what the real backend does for the call: burla's Firestore backend reads a version
before a conditional write, cuts a big write into commits of 500, and claims by a query
and a commit with preconditions, which a claimer racing others for the queue's head may
lose and try again. Writes to one document faster than it takes them wait their turn,
and fail with ABORTED when the wait would be too long; writes to one blob faster than
once a second are refused with 429. Those failures are TransientBackendError, which the
services' retries handle.
"""

from __future__ import annotations

import builtins
import math
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Literal, NoReturn, TypeVar

import trio

from burla.backends.gcp.firestore_values import approximate_size
from burla.core.errors import InvalidRequestError, TransientBackendError
from burla.core.protocols import BlobStore, Claim, Data, Document, Store
from burla.sim.clock import Timers
from burla.sim.cpu import ready_at
from burla.sim.profiles import BlobProfile, StoreProfile
from burla.sim.scenario import Seconds

Trip = Literal["read", "write", "query"]
_Written = TypeVar("_Written", bound=Collection[object])
CLAIM_SPREAD = 4
"""How much wider a claimer that lost a race at the queue's head looks next time (as in
burla's Firestore backend): with k others at the head it loses about log4(k) times."""


class CallStats:
    """Calls made and virtual seconds spent in them, by name (`store.get`, ...)."""

    def __init__(self) -> None:
        self.by_name: dict[str, list[float]] = {}
        """name -> [calls, seconds, longest]"""

    def clear(self) -> None:
        self.by_name.clear()

    def add(self, name: str, seconds: float) -> None:
        entry = self.by_name.get(name)
        if entry is None:
            self.by_name[name] = [1, seconds, seconds]
            return
        entry[0] += 1
        entry[1] += seconds
        entry[2] = max(entry[2], seconds)

    def as_json(self) -> dict[str, dict[str, float]]:
        return {
            name: {"calls": int(calls), "seconds": seconds, "longest_s": longest}
            for name, (calls, seconds, longest) in sorted(self.by_name.items())
        }


class RateGate:
    """Writes to named things, each at a sustained rate after a burst: how long a write
    waits for its turn."""

    def __init__(self, per_s: float, burst: int) -> None:
        self._interval = 1.0 / per_s
        self._slack = burst * self._interval
        self._free: dict[str, float] = {}

    def wait(self, name: str, now: float, count: int = 1) -> float:
        """The wait for `count` writes to `name` from `now`, were they booked."""
        free = max(now, self._free.get(name, 0.0)) + count * self._interval
        return max(0.0, free - now - self._slack)

    def turn(self, name: str, now: float, count: int = 1, *, limit: float = math.inf) -> float:
        """The wait for `count` writes to `name` from `now`, which are then booked; inf
        (nothing booked) if it would be longer than `limit`."""
        wait = self.wait(name, now, count)
        if wait > limit:
            return math.inf
        self._free[name] = max(now, self._free.get(name, 0.0)) + count * self._interval
        return wait


class RampGate:
    """Writes to key ranges that start cold: a range takes `start_per_s` writes a second
    from its first write, `growth` times more after every `every_s` (Firestore's 500/50/5
    rule), and lets a second's worth through at once; faster writes wait their turn."""

    def __init__(self, start_per_s: float, growth: float, every_s: float) -> None:
        self._start_per_s = start_per_s
        self._growth = growth
        self._every_s = every_s
        self._opened: dict[str, float] = {}
        self._free: dict[str, float] = {}

    def rate(self, name: str, at: float) -> float:
        """Writes a second `name` takes at `at`."""
        return self._step_rate(int((at - self._opened.get(name, at)) // self._every_s))

    def wait(self, name: str, now: float, count: int) -> float:
        """The wait for `count` writes to `name` from `now`, were they booked."""
        return max(0.0, self._passed(name, now, count) - now - 1.0)

    def book(self, name: str, now: float, count: int) -> float:
        """The wait for `count` writes to `name` from `now`, which are then booked."""
        self._opened.setdefault(name, now)
        passed = self._passed(name, now, count)
        self._free[name] = passed
        return max(0.0, passed - now - 1.0)

    def _step_rate(self, step: int) -> float:
        return self._start_per_s * math.pow(self._growth, min(step, 64))

    def _passed(self, name: str, now: float, count: int) -> float:
        """When `count` writes to `name`, after those booked, have all passed."""
        opened = self._opened.get(name, now)
        at, left = max(now, self._free.get(name, now)), float(count)
        # Steps are counted, not found again from `at`: opened + 300 - opened may fall a
        # hair short of 300, which would put a step's end back in the step it ends.
        step = int((at - opened) // self._every_s)
        while True:
            rate = self._step_rate(step)
            step_ends = opened + (step + 1) * self._every_s
            room = max(0.0, step_ends - at) * rate
            if left <= room:
                return at + left / rate
            left -= room
            at, step = step_ends, step + 1


class Refused(Exception):
    """A call the limits refuse: `error` is raised at virtual time `at`."""

    def __init__(self, error: TransientBackendError, at: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.at = at


def key_range(key: str) -> str:
    """The key range a document's writes go to, in burla's Firestore layout: documents
    whose keys differ only after their last `/` are lexicographically close (a job's
    results, its jobs/ and running/ records, ...)."""
    return "documents/" + key.rpartition("/")[0]


def items_range(queue: str) -> str:
    """A queue's items: a collection of their own (queues/<queue>/items), new per job."""
    return f"queues/{queue}/items"


class SlowStore:
    """`inner` behind the round trips and limits of `profile`.

    Every document written or deleted is a write, as Firestore counts them: a put is one,
    a put_many one per document, a push one per item and one for the queue's counter, a
    claim one per item leased, an ack one per item deleted, a renewal one per item. Writes
    go against the written document's rate, its key range's ramp and the database's rate.
    """

    def __init__(
        self,
        inner: Store,
        profile: StoreProfile,
        timers: Timers,
        rng: random.Random,
        stats: CallStats,
    ) -> None:
        self.inner = inner
        self._profile = profile
        self._timers = timers
        self._rng = rng
        self._stats = stats
        self._documents = (
            RateGate(profile.document_writes_per_s, profile.document_burst)
            if profile.document_writes_per_s
            else None
        )
        self._database = (
            RateGate(profile.database_writes_per_s, int(profile.database_writes_per_s))
            if profile.database_writes_per_s
            else None
        )
        self.ramp = (
            RampGate(profile.ramp_start_per_s, profile.ramp_growth, profile.ramp_every_s)
            if profile.ramp_start_per_s
            else None
        )
        self._writer_free = 0.0
        self._claiming: dict[str, int] = {}
        self.aborted = 0
        """Writes refused for contention (ABORTED)."""
        self.exhausted = 0
        """Commits refused for a key range's ramp or the database's rate (RESOURCE_EXHAUSTED)."""
        self.past_deadline = 0
        """Calls that waited out their deadline (DEADLINE_EXCEEDED)."""
        self.writes = 0
        """Documents written or deleted."""

    def clear_counts(self) -> None:
        """Count writes and refusals from now on (the limits keep their state)."""
        self.aborted = self.exhausted = self.past_deadline = self.writes = 0

    async def get(self, key: str) -> Document | None:
        await self._wait("get", ("read",))
        return await self.inner.get(key)

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        self._check_size(key, data)
        trips = self._conditional(if_version)
        await self._wait("put", trips, documents=(key,), writes={key_range(key): 1})
        return await self.inner.put(key, data, if_version=if_version)

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        writes: dict[str, int] = {}
        for key, data in docs.items():
            self._check_size(key, data)
            writes[key_range(key)] = writes.get(key_range(key), 0) + 1
        trips = self._commits(len(docs))
        await self._wait("put_many", trips, documents=docs.keys(), writes=writes)
        return await self.inner.put_many(docs, create_only=create_only)

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        trips = self._conditional(if_version)
        await self._wait("delete", trips, documents=(key,), writes={key_range(key): 1})
        return await self.inner.delete(key, if_version=if_version)

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:
        await self._wait("list", ("query",))
        return await self.inner.list(prefix, after=after, limit=limit)

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        # Firestore: one counter document per queue numbers each push, then the items.
        counted: tuple[Trip, ...] = ("write",) if self._profile.queue_head_races else ()
        trips = counted + self._commits(len(items))
        counter = f"queues/{queue}"
        writes = {"queues/": 1, items_range(queue): len({item for item, _ in items})}
        await self._wait("push", trips, documents=(counter,), writes=writes)
        await self.inner.push(queue, items)

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        trips: tuple[Trip, ...] = ("query", "write")
        racing = self._claiming.get(queue, 0)
        if self._profile.queue_head_races and racing:
            trips *= 1 + math.ceil(math.log(racing + 1, CLAIM_SPREAD))
        self._claiming[queue] = racing + 1
        try:
            return await self._settle(
                "claim",
                trips,
                items_range(queue),
                limit,
                lambda: self.inner.claim(queue, limit=limit, lease_s=lease_s),
            )
        finally:
            self._claiming[queue] -= 1

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        trips = ("read", *self._commits(len(receipts)))
        return await self._settle(
            "ack", trips, items_range(queue), len(receipts), lambda: self.inner.ack(queue, receipts)
        )

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        trips = ("read", *self._commits(len(receipts)))
        return await self._settle(
            "renew",
            trips,
            items_range(queue),
            len(receipts),
            lambda: self.inner.renew(queue, receipts, lease_s=lease_s),
        )

    def _conditional(self, if_version: int | None) -> tuple[Trip, ...]:
        if self._profile.conditional_reads and if_version:
            return ("read", "write")
        return ("write",)

    def _commits(self, writes: int) -> tuple[Trip, ...]:
        """The rounds of commits a write of `writes` documents takes."""
        commits = math.ceil(writes / self._profile.batch_writes)
        write: tuple[Trip, ...] = ("write",)
        return write * math.ceil(commits / self._profile.parallel_commits)

    def _check_size(self, key: str, data: Data) -> None:
        most = self._profile.document_bytes
        if most is not None and approximate_size(data) > most:
            raise InvalidRequestError(
                f"writing document {key!r}: {self._profile.name} cannot store this (a "
                f"document over {most:,} bytes); documents must stay under 1 MiB"
            )

    def _trips(self, now: float, trips: Sequence[Trip]) -> float:
        """The seconds of `trips` from `now` (a write waits for the one writer, if any)."""
        profile, rng = self._profile, self._rng
        seconds = 0.0
        for trip in trips:
            took = getattr(profile, trip).draw(rng)
            if trip == "write" and profile.one_writer:
                start = max(now + seconds, self._writer_free)
                self._writer_free = start + took
                took += start - (now + seconds)
            seconds += took
        return seconds

    async def _wait(
        self,
        method: str,
        trips: Sequence[Trip],
        *,
        documents: Collection[str] = (),
        writes: Mapping[str, int] | None = None,
    ) -> None:
        """Wait out `trips`, then the turn of `writes` (key range -> documents) and of
        `documents` at their limits, taken when the commit is sent (so in the order
        commits reach the database); raise what the limits refuse."""
        asked = trio.current_time()
        now = max(asked, ready_at())  # it leaves once its service's CPU got to it
        sent = now + self._trips(now, trips)
        done = sent
        if writes or documents:
            await self._timers.sleep_until(sent)
            try:
                if writes:
                    self._admit(method, sent, writes)
                done += self._write_turns(method, sent, documents, writes or {})
            except Refused as refused:
                await self._refuse(method, asked, refused)
        await self._timers.sleep_until(done)
        self._stats.add(f"store.{method}", done - asked)

    async def _settle(
        self,
        method: str,
        trips: Sequence[Trip],
        items: str,
        most: int,
        call: Callable[[], Awaitable[_Written]],
    ) -> _Written:
        """A queue call that writes as many items as it returns (at most `most`): when its
        commit is sent, refused as a commit of `most` writes would be, or else carried out
        (the in-memory store does not wait, so no other call comes between) and its
        writes take their turn."""
        asked = trio.current_time()
        now = max(asked, ready_at())
        sent = now + self._trips(now, trips)
        await self._timers.sleep_until(sent)
        try:
            if most:
                self._admit(method, sent, {items: most})
        except Refused as refused:
            await self._refuse(method, asked, refused)
        written = await call()
        done = sent + self._write_turns(method, sent, (), {items: len(written)})
        await self._timers.sleep_until(done)
        self._stats.add(f"store.{method}", done - asked)
        return written

    async def _refuse(self, method: str, asked: float, refused: Refused) -> NoReturn:
        await self._timers.sleep_until(refused.at)
        self._stats.add(f"store.{method}", refused.at - asked)
        raise refused.error

    def _admit(self, method: str, sent: float, writes: Mapping[str, int]) -> None:
        """Refuse (Refused) a commit whose first round of writes would wait too long for
        its key ranges' ramps or the database's rate: RESOURCE_EXHAUSTED at once, or
        DEADLINE_EXCEEDED once the deadline has passed."""
        profile = self._profile
        round_writes = profile.batch_writes * profile.parallel_commits
        wait = 0.0
        if self.ramp is not None:
            for name, count in writes.items():
                wait = max(wait, self.ramp.wait(name, sent, min(count, round_writes)))
        if self._database is not None:
            total = min(sum(writes.values()), round_writes)
            wait = max(wait, self._database.wait("", sent, total))
        if wait > profile.throttle_timeout_s:
            self.exhausted += 1
            raise Refused(
                TransientBackendError(
                    f"{profile.name} {method}: RESOURCE_EXHAUSTED: This database has exceeded "
                    "their daily quota or the ramp up limit for writes, please retry with "
                    "exponential backoff."
                ),
                sent,
            )
        if wait > profile.deadline_s:
            self.past_deadline += 1
            raise Refused(
                TransientBackendError(
                    f"{profile.name} {method}: DEADLINE_EXCEEDED: A deadline was exceeded on "
                    "the server."
                ),
                sent + profile.deadline_s,
            )

    def _write_turns(
        self, method: str, when: float, documents: Collection[str], writes: Mapping[str, int]
    ) -> float:
        """How long the writes wait for their documents, key ranges and the database;
        ABORTED (Refused) when a document is written faster than it takes writes for too
        long."""
        wait = 0.0
        if self._documents is not None:
            limit = self._profile.contention_timeout_s
            for key in documents:
                turn = self._documents.turn(key, when, limit=limit)
                if turn == math.inf:
                    self.aborted += 1
                    raise Refused(
                        TransientBackendError(
                            f"{self._profile.name} {method} of {key!r}: ABORTED: Too much "
                            "contention on these documents. Please try again."
                        ),
                        when,
                    )
                wait = max(wait, turn)
        total = sum(writes.values())
        self.writes += total
        if self.ramp is not None:
            for name, count in writes.items():
                if count:
                    wait = max(wait, self.ramp.book(name, when, count))
        if self._database is not None and total:
            wait = max(wait, self._database.turn("", when, total))
        return wait


class SlowBlobStore:
    """`inner` behind the round trips and limits of `profile`."""

    def __init__(
        self,
        inner: BlobStore,
        profile: BlobProfile,
        timers: Timers,
        rng: random.Random,
        stats: CallStats,
    ) -> None:
        self.inner = inner
        self._profile = profile
        self._timers = timers
        self._rng = rng
        self._stats = stats
        self._objects = (
            RateGate(profile.object_writes_per_s, 1) if profile.object_writes_per_s else None
        )
        per_s = profile.bucket_writes_per_s
        self._bucket_writes = RateGate(per_s, int(per_s)) if per_s else None
        per_s = profile.bucket_reads_per_s
        self._bucket_reads = RateGate(per_s, int(per_s)) if per_s else None
        self.refused = 0
        """Writes refused with 429 (one object written too often)."""

    async def put(self, key: str, data: bytes) -> None:
        now = max(trio.current_time(), ready_at())
        if self._objects is not None and self._objects.turn(key, now, limit=0.0) == math.inf:
            await self._waited("put", self._profile.write.draw(self._rng))
            self.refused += 1
            raise TransientBackendError(
                f"{self._profile.name} put of {key!r}: 429 Too Many Requests (one object is "
                "written at most once a second)"
            )
        await self._waited("put", self._took(self._profile.write, self._bucket_writes))
        await self.inner.put(key, data)

    async def get(self, key: str) -> bytes:
        await self._waited("get", self._took(self._profile.read, self._bucket_reads))
        return await self.inner.get(key)

    async def list(self, prefix: str) -> builtins.list[str]:
        await self._waited("list", self._took(self._profile.list, self._bucket_reads))
        return await self.inner.list(prefix)

    async def delete_prefix(self, prefix: str) -> int:
        took = self._profile.list.draw(self._rng) + self._took(
            self._profile.write, self._bucket_writes
        )
        await self._waited("delete_prefix", took)
        return await self.inner.delete_prefix(prefix)

    async def signed_url(self, key: str, *, method: Literal["GET", "PUT"], expires_s: float) -> str:
        # Signed where the service runs, with its key: no round trip.
        return await self.inner.signed_url(key, method=method, expires_s=expires_s)

    def _took(self, trip: Seconds, bucket: RateGate | None) -> float:
        took = trip.draw(self._rng)
        if bucket is not None:
            took += bucket.turn("", max(trio.current_time(), ready_at()))
        return took

    async def _waited(self, method: str, seconds: float) -> None:
        """Wait until the service's CPU got to the call, then `seconds` more."""
        asked = trio.current_time()
        done = max(asked, ready_at()) + seconds
        await self._timers.sleep_until(done)
        self._stats.add(f"blobs.{method}", done - asked)
