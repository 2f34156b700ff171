"""The Firestore calls FirestoreStore makes: reads, and batched writes with preconditions.

No call here holds a lock. A read-modify-write reads first, then commits with a
precondition on the update time it read (Firestore's compare-and-set); when someone else
wrote in between, the commit fails as a whole and the documents are read again.
Competing transactions would wait on each other's locks instead (seconds, in the emulator).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar

from google.api_core import exceptions as api
from google.api_core.retry import AsyncRetry
from google.cloud.firestore_v1 import AsyncClient, AsyncDocumentReference, DocumentSnapshot

from burla.backends.gcp.firestore_values import approximate_size
from burla.core.errors import BackendError

_T = TypeVar("_T")

Snapshot = DocumentSnapshot[Any]
Write = dict[str, Any] | Literal["delete"]
"""What to do to one document: update these fields, or delete it."""
Plan = Callable[[Snapshot], Write | None]
"""Given a document as read, what to write to it; None to leave it alone."""

BATCH = 500
"""Firestore's most writes in one commit."""
BATCH_BYTES = 2 << 20
"""Rough bytes of data per commit: Firestore takes requests of 10 MiB, its emulator 4 MiB."""
ATTEMPTS = 20
"""Reads and writes of one set of documents before a change that keeps losing gives up."""
_PARALLEL = 8
"""Commits in flight at once for one large write."""


class FirestoreCalls:
    """One client, with a retry policy that gives up after `timeout_s`."""

    def __init__(self, client: AsyncClient, timeout_s: float) -> None:
        self.client = client
        retry = AsyncRetry(predicate=_passing, initial=0.05, maximum=2.0, timeout=timeout_s)
        self._rpc = {"retry": retry, "timeout": timeout_s}

    def rpc(self) -> dict[str, Any]:
        """The retry and timeout arguments every client call takes."""
        return dict(self._rpc)

    async def close(self) -> None:
        # The client opens its channel on first use and offers no public way to close it.
        # The grace lets streams that were read to the end receive their final status:
        # cancelled instead, they would answer after this event loop may have closed.
        channel_owner = getattr(self.client, "_firestore_api_internal", None)
        if channel_owner is not None:
            await channel_owner.transport.grpc_channel.close(grace=1.0)

    async def get_all(
        self, refs: Sequence[AsyncDocumentReference], fields: Sequence[str]
    ) -> list[Snapshot]:
        """The documents of `refs` that exist, with only `fields`."""
        found: list[Snapshot] = []
        for chunk in chunked(refs, lambda ref: 1):
            async for snapshot in self.client.get_all(list(chunk), list(fields), **self.rpc()):
                if snapshot.exists:
                    found.append(snapshot)
        return found

    async def create_missing(
        self, entries: Sequence[tuple[AsyncDocumentReference, dict[str, Any]]]
    ) -> set[str]:
        """Create the documents of `entries` that do not exist yet; returns their paths."""
        created = await gather(self._create_missing(chunk) for chunk in chunked(entries, _weight))
        return set().union(*created)

    async def _create_missing(
        self, chunk: Sequence[tuple[AsyncDocumentReference, dict[str, Any]]]
    ) -> set[str]:
        pending = {ref.path: (ref, fields) for ref, fields in chunk}
        for _ in range(ATTEMPTS):
            if not pending:
                return set()
            batch = self.client.batch()
            for ref, fields in pending.values():
                batch.create(ref, fields)
            try:
                await batch.commit(**self.rpc())
                return set(pending)
            except api.AlreadyExists:  # one exists, so none was written: leave out all that do
                existing = await self.get_all([ref for ref, _ in pending.values()], [])
                for found in existing:
                    pending.pop(found.reference.path, None)
        raise kept_changing(f"{len(chunk)} documents")

    async def write_current(
        self, found: Sequence[Snapshot], plan: Plan, fields: Sequence[str]
    ) -> list[tuple[Snapshot, Write]]:
        """Apply `plan` to documents as read; those that changed since are read again (only
        `fields`) and planned anew. Returns the writes made."""
        done: list[tuple[Snapshot, Write]] = []
        for chunk in chunked(found, lambda snapshot: 1):
            snapshots: Sequence[Snapshot] = chunk
            for _ in range(ATTEMPTS):
                writes = [(doc, w) for doc in snapshots if (w := plan(doc)) is not None]
                if not writes or await self.commit_unchanged(writes):
                    done.extend(writes)
                    break
                snapshots = await self.get_all([doc.reference for doc, _ in writes], fields)
            else:
                raise kept_changing(f"{len(chunk)} documents")
        return done

    async def commit_unchanged(self, writes: Sequence[tuple[Snapshot, Write]]) -> bool:
        """Commit all of `writes` if none of their documents changed since it was read;
        False if one did (and nothing was written)."""
        batch = self.client.batch()
        for doc, write in writes:
            option = self.client.write_option(last_update_time=doc.update_time)
            if write == "delete":
                batch.delete(doc.reference, option=option)
            else:
                batch.update(doc.reference, write, option=option)
        try:
            await batch.commit(**self.rpc())
        except (api.FailedPrecondition, api.NotFound):
            return False
        return True


_TRANSIENT = (
    api.ServiceUnavailable,
    api.DeadlineExceeded,
    api.InternalServerError,
    api.TooManyRequests,
    api.Aborted,
)


def _passing(error: Exception) -> bool:
    """Whether a failed call may succeed when tried again."""
    if "exceeds maximum size" in str(error):  # a request too large stays too large
        return False
    return isinstance(error, _TRANSIENT)


def _weight(entry: tuple[AsyncDocumentReference, dict[str, Any]]) -> int:
    return approximate_size(entry[1])


def chunked(values: Sequence[_T], size: Callable[[_T], int]) -> list[Sequence[_T]]:
    """`values` cut into runs that fit one commit: at most BATCH of them and about
    BATCH_BYTES by `size` (a single larger value goes alone)."""
    chunks: list[Sequence[_T]] = []
    start, total = 0, 0
    for index, value in enumerate(values):
        weight = size(value)
        if index > start and (index - start == BATCH or total + weight > BATCH_BYTES):
            chunks.append(values[start:index])
            start, total = index, 0
        total += weight
    if start < len(values):
        chunks.append(values[start:])
    return chunks


async def gather(calls: Iterable[Awaitable[_T]]) -> list[_T]:
    """Await `calls`, a few at once; raises the first failure once all have ended."""
    limiter = asyncio.Semaphore(_PARALLEL)

    async def limited(call: Awaitable[_T]) -> _T:
        async with limiter:
            return await call

    results = await asyncio.gather(*(limited(call) for call in calls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]  # no exceptions are left


def kept_changing(what: str) -> BackendError:
    return BackendError(
        f"{what} kept changing while this store wrote to them ({ATTEMPTS} tries); "
        "something else writes them without pause: find it, then retry"
    )
