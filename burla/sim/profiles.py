"""How fast the databases and blob stores burla runs on answer, and the limits they keep:
the profiles a scenario names with `store_profile`.

Figures Google publishes are marked "documented" with their page; latencies it does not
publish are assumptions, reasoned in docs/simulator.md. `memory` is no profile at all:
calls take no virtual time, as before profiles existed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from burla.sim.scenario import Seconds


def _lognormal(median_s: float, cap_s: float, sigma: float = 0.5) -> Seconds:
    return Seconds(low=median_s, high=cap_s, dist="lognormal", sigma=sigma)


@dataclass(frozen=True)
class StoreProfile:
    """A Store backend: the time of each kind of round trip, and its limits."""

    name: str
    read: Seconds
    """A document read, or a batch read of documents by key."""
    write: Seconds
    """One commit (a write, or a batch of up to `batch_writes`)."""
    query: Seconds
    """A query: a list, or a queue's available items."""
    batch_writes: int
    """Writes per commit; a bigger write is cut into commits, as the backend does."""
    parallel_commits: int = 1
    """Commits the backend sends at once for one big write."""
    conditional_reads: bool = False
    """A write conditioned on a version reads the document first (no server-side check)."""
    document_bytes: int | None = None
    """Largest document; a bigger one is refused (InvalidRequestError)."""
    document_writes_per_s: float | None = None
    """Sustained writes to one document; faster ones wait their turn."""
    document_burst: int = 1
    """Writes to one document that pass at once before the next waits."""
    contention_timeout_s: float = 10.0
    """A write that would wait longer than this for its document fails instead (ABORTED)."""
    database_writes_per_s: float | None = None
    """Sustained document writes of the whole database (each document written or deleted
    is one); faster ones wait."""
    ramp_start_per_s: float | None = None
    """Writes a second a key range takes from its first write (None: no ramp): a new
    collection, or new lexicographically close documents, starts cold."""
    ramp_growth: float = 1.5
    """How much more a key range takes after each `ramp_every_s`."""
    ramp_every_s: float = 300.0
    throttle_timeout_s: float = math.inf
    """A commit that would wait longer than this for its key range's ramp or the database's
    rate is refused at once (RESOURCE_EXHAUSTED); nothing of it is written."""
    deadline_s: float = math.inf
    """A call that would wait longer than this for the limits fails when it has passed
    (DEADLINE_EXCEEDED); nothing of it is written."""
    one_writer: bool = False
    """Writes take turns: one write transaction at a time (SQLite's write lock)."""
    queue_head_races: bool = False
    """Claims of one queue at once race for its head: a loser reads and commits again."""


@dataclass(frozen=True)
class BlobProfile:
    """A blob store backend: the time of each kind of round trip, and its limits."""

    name: str
    read: Seconds
    write: Seconds
    list: Seconds
    object_writes_per_s: float | None = None
    """Writes to one object name; a faster one is refused with 429 (it is retried)."""
    bucket_writes_per_s: float | None = None
    """Object writes of the whole bucket before it scales up; faster ones wait."""
    bucket_reads_per_s: float | None = None


INSTANT = Seconds(low=0, high=0)

MEMORY = StoreProfile(
    name="memory", read=INSTANT, write=INSTANT, query=INSTANT, batch_writes=1 << 30
)
"""Answers at once: calls wait only for their service's CPU (when it is charged)."""

FIRESTORE = StoreProfile(
    name="firestore",
    # Assumptions (Google publishes no latency figures): a same-region client.
    read=_lognormal(0.008, 0.5),
    write=_lognormal(0.025, 1.0),
    query=_lognormal(0.012, 0.5),
    batch_writes=500,  # documented: writes per commit or transaction
    parallel_commits=8,  # burla's Firestore backend (firestore_calls._PARALLEL)
    conditional_reads=True,  # burla's backend reads the version, then commits on it
    document_bytes=(1 << 20) - 89,  # documented: 1 MiB less the 89 bytes of overhead
    document_writes_per_s=1.0,  # documented: sustained writes to one document
    document_burst=10,  # assumption: a short burst passes before writes queue
    contention_timeout_s=10.0,  # assumption: then ABORTED "Too much contention"
    database_writes_per_s=10_000.0,  # documented until 2021; now a soft scaling limit
    ramp_start_per_s=500.0,  # documented: the 500/50/5 rule, 500 operations/s at first,
    ramp_growth=1.5,  # then 50% more
    ramp_every_s=300.0,  # every 5 minutes
    throttle_timeout_s=10.0,  # assumption: longer backlogs are refused, RESOURCE_EXHAUSTED
    deadline_s=60.0,  # documented: the default deadline of a call
    queue_head_races=True,  # burla's backend: commits with preconditions at the head
)

FIRESTORE_WARM = replace(FIRESTORE, name="firestore-warm", ramp_start_per_s=None)
"""Firestore whose key ranges are already split for the load (not burla's case: each job
writes a new queue and a new range of results): the database's rate is the only one."""

REDIS = StoreProfile(
    name="redis",
    # Assumptions: Memorystore in the client's zone; every call is one Lua script.
    read=_lognormal(0.0005, 0.02, sigma=0.4),
    write=_lognormal(0.0007, 0.02, sigma=0.4),
    query=_lognormal(0.0007, 0.02, sigma=0.4),
    batch_writes=2000,  # burla's Redis backend: items per script call
)

SQLITE = StoreProfile(
    name="sqlite",
    # Assumptions: a local file in WAL mode with synchronous=NORMAL (no fsync per commit).
    read=_lognormal(0.00005, 0.005),
    write=_lognormal(0.0003, 0.02),
    query=_lognormal(0.0002, 0.01),
    batch_writes=1 << 30,  # one transaction holds any batch
    one_writer=True,  # BEGIN IMMEDIATE: one write transaction at a time
)

STORES: dict[str, StoreProfile] = {
    p.name: p for p in (MEMORY, FIRESTORE, FIRESTORE_WARM, REDIS, SQLITE)
}

GCS = BlobProfile(
    name="gcs",
    # Assumptions: small objects, same-region client.
    read=_lognormal(0.030, 2.0),
    write=_lognormal(0.050, 2.0),
    list=_lognormal(0.040, 2.0),
    object_writes_per_s=1.0,  # documented: one write per second to one object name
    bucket_writes_per_s=1000.0,  # documented: a bucket's initial write capacity
    bucket_reads_per_s=5000.0,  # documented: a bucket's initial read capacity
)

DISK = BlobProfile(
    name="disk",
    # Assumptions: files on the machine's own SSD, through the page cache.
    read=_lognormal(0.0001, 0.01),
    write=_lognormal(0.0003, 0.02),
    list=_lognormal(0.0002, 0.01),
)

MEMORY_BLOBS = BlobProfile(name="memory", read=INSTANT, write=INSTANT, list=INSTANT)

BLOBS_FOR: dict[str, BlobProfile] = {
    "memory": MEMORY_BLOBS,
    "firestore": GCS,
    "firestore-warm": GCS,
    "redis": GCS,
    "sqlite": DISK,
}
"""The blob store a cluster on each Store keeps: Cloud Storage beside Firestore or Redis,
the local disk beside SQLite."""


@dataclass(frozen=True)
class Network:
    """One-way delays: frames between main_service and nodes, a user's requests and
    answers to main_service."""

    link: Seconds
    client: Seconds


SAME_REGION = Network(
    # Assumptions: machines in one region (VM to VM within a zone is ~0.1 ms one way,
    # across zones a few tenths); users' HTTP requests from a machine in the same region,
    # through TLS on a kept-alive connection.
    link=_lognormal(0.00025, 0.005),
    client=_lognormal(0.0005, 0.02),
)
