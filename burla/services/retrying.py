"""Store, BlobStore and ComputeProvider calls tried again when their backend fails for a
moment.

A backend raises TransientBackendError for a failure that may pass (a connection reset,
an overloaded server, a lock held too long). Every call of the services goes through
these wrappers: such a failure is tried again after a pause that doubles each time, with
full jitter so that many nodes do not retry in step, until RETRY_FOR_S have passed; then
the last error is raised as a BackendUnavailableError that says how long it was tried.
A service's own work that nobody waits on (a node claiming inputs, main_service acting on
a node's report) goes on `patiently`: it waits for the backend to come back, however long
that takes, rather than ending the service (a throttled Firestore may take minutes).

Calls are safe to repeat: pushes and create-only writes skip what is there already,
acks and renewals of a receipt are idempotent, reads change nothing. A conditional
write (put with `if_version`) may have been carried out by the try that failed; its
retry then raises ConflictError, which its callers handle like any lost race. A machine
whose creation failed for a moment may have been made all the same: a retry that finds
it there takes it (see RetryingCompute.create); deletes say False for what is gone.
"""

from __future__ import annotations

import builtins
import random
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal, TypeVar

import anyio

from burla.backends.faults import FaultyBlobStore, FaultyStore, fault_plan
from burla.core.backoff import Backoff
from burla.core.errors import BackendUnavailableError, ConflictError, TransientBackendError
from burla.core.protocols import (
    BlobStore,
    BootSpec,
    Claim,
    ComputeProvider,
    Data,
    Document,
    Machine,
    Store,
)

RETRY_FOR_S = 30.0
FIRST_PAUSE_S = 0.05
MAX_PAUSE_S = 2.0
PATIENT_PAUSE_S = 5.0
"""How long `patiently` waits before trying again a call whose retries ran out."""

_T = TypeVar("_T")


async def retried(
    what: str,
    call: Callable[[], Awaitable[_T]],
    *,
    retry_for_s: float = RETRY_FOR_S,
    rng: random.Random | None = None,
) -> _T:
    """`call()`, tried again on TransientBackendError until `retry_for_s` have passed
    (by the event loop's clock, which is virtual in the simulator)."""
    try:
        return await call()
    except TransientBackendError as first:
        error = first
    # Most calls succeed at once: the backoff is made only for one that failed.
    backoff = Backoff(
        FIRST_PAUSE_S,
        MAX_PAUSE_S,
        jitter=1.0,
        rng=rng,
        clock=anyio.current_time,
        give_up_after_s=retry_for_s,
    )
    while not backoff.exhausted:
        await anyio.sleep(backoff.pause())
        try:
            return await call()
        except TransientBackendError as again:
            error = again
    raise BackendUnavailableError(
        f"{what} kept failing for {backoff.elapsed_s:.1f} s ({backoff.failures + 1} "
        f"tries); the last error: {error}"
    ) from error


async def patiently(what: str, call: Callable[[], Awaitable[_T]]) -> _T:
    """`call()` (made of retried calls), tried again every PATIENT_PAUSE_S while its backend
    stays unavailable: for work that must be done once the backend is back, and that
    nobody waits on meanwhile. Each wait is said on stderr."""
    while True:
        try:
            return await call()
        except BackendUnavailableError as error:
            print(
                f"burla: {what} waits for its backend: {error}; trying again in "
                f"{PATIENT_PAUSE_S:g} s",
                file=sys.stderr,
            )
        await anyio.sleep(PATIENT_PAUSE_S)


class RetryingStore:
    """A Store whose calls are retried on transient failures (`rng` draws the jitter)."""

    def __init__(
        self,
        store: Store,
        *,
        retry_for_s: float = RETRY_FOR_S,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = store
        self._retry_for_s = retry_for_s
        self._rng = rng

    def _retried(self, what: str, call: Callable[[], Awaitable[_T]]) -> Awaitable[_T]:
        return retried(f"the Store's {what}", call, retry_for_s=self._retry_for_s, rng=self._rng)

    async def get(self, key: str) -> Document | None:
        return await self._retried(f"get of {key!r}", lambda: self.inner.get(key))

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        return await self._retried(
            f"put of {key!r}", lambda: self.inner.put(key, data, if_version=if_version)
        )

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        return await self._retried(
            f"write of {len(docs)} documents",
            lambda: self.inner.put_many(docs, create_only=create_only),
        )

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        return await self._retried(
            f"delete of {key!r}", lambda: self.inner.delete(key, if_version=if_version)
        )

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:
        return await self._retried(
            f"list of {prefix!r}", lambda: self.inner.list(prefix, after=after, limit=limit)
        )

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        await self._retried(f"push to queue {queue!r}", lambda: self.inner.push(queue, items))

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        return await self._retried(
            f"claim from queue {queue!r}",
            lambda: self.inner.claim(queue, limit=limit, lease_s=lease_s),
        )

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        return await self._retried(
            f"ack on queue {queue!r}", lambda: self.inner.ack(queue, receipts)
        )

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        return await self._retried(
            f"lease renewal on queue {queue!r}",
            lambda: self.inner.renew(queue, receipts, lease_s=lease_s),
        )


class RetryingBlobStore:
    """A BlobStore whose calls are retried on transient failures (`rng` draws the jitter)."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        retry_for_s: float = RETRY_FOR_S,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = blobs
        self._retry_for_s = retry_for_s
        self._rng = rng

    def _retried(self, what: str, call: Callable[[], Awaitable[_T]]) -> Awaitable[_T]:
        where = f"the blob store's {what}"
        return retried(where, call, retry_for_s=self._retry_for_s, rng=self._rng)

    async def put(self, key: str, data: bytes) -> None:
        await self._retried(f"put of {key!r}", lambda: self.inner.put(key, data))

    async def get(self, key: str) -> bytes:
        return await self._retried(f"get of {key!r}", lambda: self.inner.get(key))

    async def list(self, prefix: str) -> builtins.list[str]:
        return await self._retried(f"list of {prefix!r}", lambda: self.inner.list(prefix))

    async def delete_prefix(self, prefix: str) -> int:
        return await self._retried(
            f"delete of {prefix!r}", lambda: self.inner.delete_prefix(prefix)
        )

    async def signed_url(self, key: str, *, method: Literal["GET", "PUT"], expires_s: float) -> str:
        return await self._retried(
            f"signing of {key!r}",
            lambda: self.inner.signed_url(key, method=method, expires_s=expires_s),
        )


class RetryingCompute:
    """A ComputeProvider whose calls are retried on transient failures (a cloud's rate
    limits and 5xx answers, see e.g. backends.gcp.gce_errors)."""

    def __init__(
        self,
        compute: ComputeProvider,
        *,
        retry_for_s: float = RETRY_FOR_S,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = compute
        self._retry_for_s = retry_for_s
        self._rng = rng

    def _retried(self, what: str, call: Callable[[], Awaitable[_T]]) -> Awaitable[_T]:
        return retried(what, call, retry_for_s=self._retry_for_s, rng=self._rng)

    async def create(self, boot: BootSpec) -> Machine:
        tries = 0

        async def create_once() -> Machine:
            nonlocal tries
            tries += 1
            try:
                return await self.inner.create(boot)
            except ConflictError:
                # An earlier try that failed for a moment may have made it after all.
                made = await self.inner.get(boot.node_id) if tries > 1 else None
                if made is None:
                    raise
                return made

        return await self._retried(f"creating machine {boot.node_id!r}", create_once)

    async def get(self, node_id: str) -> Machine | None:
        return await self._retried(f"reading machine {node_id!r}", lambda: self.inner.get(node_id))

    async def list(self) -> builtins.list[Machine]:
        return await self._retried("listing the machines", self.inner.list)

    async def delete(self, node_id: str) -> bool:
        return await self._retried(
            f"deleting machine {node_id!r}", lambda: self.inner.delete(node_id)
        )


def resilient(
    store: Store, blobs: BlobStore, env: Mapping[str, str]
) -> tuple[RetryingStore, RetryingBlobStore]:
    """A service's Store and BlobStore: retried, and failing now and then on purpose when
    BURLA_FAULTS says so (burla.backends.faults)."""
    plan = fault_plan(env)
    if plan is not None:
        store, blobs = FaultyStore(store, plan), FaultyBlobStore(blobs, plan)
    return RetryingStore(store), RetryingBlobStore(blobs)


class PatientStore:
    """A Store (a RetryingStore) whose calls wait `patiently` for it to come back: for the
    work a service does on its own, which must not end the service or be left undone."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    async def get(self, key: str) -> Document | None:
        return await patiently(f"the Store's get of {key!r}", lambda: self.inner.get(key))

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        return await patiently(
            f"the Store's put of {key!r}", lambda: self.inner.put(key, data, if_version=if_version)
        )

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        return await patiently(
            f"the Store's put of {len(docs)} documents",
            lambda: self.inner.put_many(docs, create_only=create_only),
        )

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        return await patiently(
            f"the Store's delete of {key!r}", lambda: self.inner.delete(key, if_version=if_version)
        )

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:
        return await patiently(
            f"the Store's list of {prefix!r}",
            lambda: self.inner.list(prefix, after=after, limit=limit),
        )

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        await patiently(f"the Store's push to {queue!r}", lambda: self.inner.push(queue, items))

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        return await patiently(
            f"the Store's claim from {queue!r}",
            lambda: self.inner.claim(queue, limit=limit, lease_s=lease_s),
        )

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        return await patiently(
            f"the Store's ack in {queue!r}", lambda: self.inner.ack(queue, receipts)
        )

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        return await patiently(
            f"the Store's renewal in {queue!r}",
            lambda: self.inner.renew(queue, receipts, lease_s=lease_s),
        )
