"""FirestoreStore: the Store protocol on Google Cloud Firestore, for clusters on Google Cloud.

Everything a store holds lives under one namespace document, `burla/<namespace>`, so many
clusters (and many tests) share one database without meeting:

    burla/<ns>/documents/<id>                  {key, data, version}
    burla/<ns>/queues/<id>                     {pushed}: how many items the queue was given
    burla/<ns>/queues/<id>/items/<id>          {item_id, seq, data, deliveries, receipt,
                                                waiting | lease_expires}

Ids are the escaped key, queue name or item id (see firestore_values); lists filter and
sort on the `key` field. Every query needs only Firestore's automatic single-field indexes.

No call holds a lock. Each read-modify-write reads first, then writes with a precondition
on the update time it read (Firestore's compare-and-set): when someone else wrote in
between, the write fails as a whole and the store reads again. Competing transactions
would instead wait on each other's locks (seconds in the emulator).

Queues: an item is available while it has a `waiting` field, which holds its push order
`seq`; a claim takes the lowest ones, so a single-field index yields them oldest first.
A leased item has `lease_expires` instead. Before it claims, a claim hands every passed
lease back to `waiting` (the item keeps its receipt, which stays current until the item
is claimed again), so an expired item gets its old place. A receipt is
`<token>:<item document id>`: acks and renewals read their items directly. Claimers that
race for the head of a queue spread out over a wider window after each lost race.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from google.api_core import exceptions as api
from google.api_core.retry import AsyncRetry, if_exception_type
from google.cloud.firestore_v1 import (
    DELETE_FIELD,
    AsyncClient,
    AsyncCollectionReference,
    AsyncDocumentReference,
    DocumentSnapshot,
    FieldFilter,
    Increment,
)

from burla.backends.gcp.firestore_errors import translated
from burla.backends.gcp.firestore_values import (
    approximate_size,
    decode_data,
    document_id,
    encode_data,
    is_document_id,
)
from burla.backends.store_rules import check_lease, check_limit, check_version
from burla.core.clock import Clock, WallClock
from burla.core.errors import BackendError, InvalidRequestError
from burla.core.protocols import Claim, Data, Document

_WALL_CLOCK = WallClock()

_T = TypeVar("_T")

Snapshot = DocumentSnapshot[Any]
Write = dict[str, Any] | Literal["delete"]
"""What to do to one document: update these fields, or delete it."""
Plan = Callable[[Snapshot], Write | None]
"""Given a document as read, what to write to it; None to leave it alone."""

_ROOT = "burla"
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_BATCH = 500
"""Firestore's most writes in one commit."""
_BATCH_BYTES = 4 << 20
"""Bytes of data per commit, well under Firestore's 10 MiB request limit."""
_PARALLEL = 8
"""Commits in flight at once for one large write."""
_ATTEMPTS = 20
"""Reads and writes of one document set before a change that keeps losing gives up."""
_MAX_SPREAD = 64
_MOST = 2**31 - 1
"""A query `limit` above every real count, within Firestore's 32-bit limits."""
_ITEM_STATE = ["item_id", "seq", "receipt", "waiting", "lease_expires"]
"""The fields acks, renewals and expiry read: not the item's data."""


class FirestoreStore:
    """The Store protocol on Firestore; safe to share between the tasks of one event loop.

    `project` names the Google Cloud project; `namespace` keeps this store's documents and
    queues apart from every other namespace in the database. Without `client` the store
    makes one, which honours FIRESTORE_EMULATOR_HOST; a given client is the store's to
    close. Leases run on `clock`. A call that cannot reach Firestore keeps retrying for
    `timeout_s`, then raises BackendError.
    """

    def __init__(
        self,
        project: str,
        namespace: str,
        *,
        client: AsyncClient | None = None,
        clock: Clock = _WALL_CLOCK,
        timeout_s: float = 60.0,
    ) -> None:
        if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
            raise InvalidRequestError(
                f"Firestore namespace {namespace!r} must be 1 to 128 letters, digits, '_', "
                "'.' or '-', starting with a letter or digit"
            )
        self._project = project
        self._namespace = namespace
        with translated("connecting to Firestore", project):
            self._client = client if client is not None else AsyncClient(project=project)
        if self._client.project != project:
            raise InvalidRequestError(
                f"the Firestore client is for project {self._client.project!r}, "
                f"not {project!r}: make the client for the store's project"
            )
        self._clock = clock
        self._timeout_s = timeout_s
        self._retry = AsyncRetry(
            predicate=if_exception_type(
                api.ServiceUnavailable,
                api.DeadlineExceeded,
                api.InternalServerError,
                api.TooManyRequests,
                api.Aborted,
            ),
            initial=0.05,
            maximum=2.0,
            timeout=timeout_s,
        )
        self._closed = False
        root = self._client.document(_ROOT, namespace)
        self._documents = root.collection("documents")
        self._queues = root.collection("queues")

    @property
    def namespace(self) -> str:
        return self._namespace

    async def close(self) -> None:
        """Close the connection to Firestore; later calls raise BackendError."""
        if self._closed:
            return
        self._closed = True
        # The client opens its channel on first use and offers no public way to close it.
        # The grace lets streams that were read to the end receive their final status:
        # cancelled instead, they would answer after this event loop may have closed.
        channel_owner = getattr(self._client, "_firestore_api_internal", None)
        if channel_owner is not None:
            await channel_owner.transport.grpc_channel.close(grace=1.0)

    # Documents

    async def get(self, key: str) -> Document | None:
        with self._translated(f"reading document {key!r}"):
            snapshot = await self._doc(key).get(**self._rpc())
        if not snapshot.exists:
            return None
        return _document(key, snapshot)

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        fields = encode_data(key, data)
        if if_version is not None and if_version < 0:
            check_version(key, if_version, None)
        ref = self._doc(key)
        with self._translated(f"writing document {key!r}"):
            if if_version is None:
                version = await self._upsert(ref, key, fields)
            elif if_version == 0:
                await self._create(ref, key, fields)
                version = 1
            else:
                await self._replace(ref, key, fields, if_version)
                version = if_version + 1
        return Document(key, decode_data(fields), version)

    async def _upsert(self, ref: AsyncDocumentReference, key: str, fields: Data) -> int:
        result = await ref.set(
            _upsert_fields(key, fields),
            merge=_UPSERT_PATHS,  # type: ignore[arg-type]  # field paths are documented
            **self._rpc(),
        )
        version: int = result.transform_results[0].integer_value
        return version

    async def _create(self, ref: AsyncDocumentReference, key: str, fields: Data) -> None:
        for _ in range(_ATTEMPTS):
            try:
                await ref.create({"key": key, "data": fields, "version": 1}, **self._rpc())
                return
            except api.AlreadyExists:
                found = await ref.get(["version"], **self._rpc())
                if found.exists:
                    check_version(key, 0, found.get("version"))
        raise _kept_changing(f"document {key!r}")

    async def _replace(
        self, ref: AsyncDocumentReference, key: str, fields: Data, if_version: int
    ) -> None:
        for _ in range(_ATTEMPTS):
            found = await ref.get(["version"], **self._rpc())
            check_version(key, if_version, found.get("version") if found.exists else None)
            option = self._client.write_option(last_update_time=found.update_time)
            try:
                await ref.update(
                    {"key": key, "data": fields, "version": if_version + 1},
                    option=option,
                    **self._rpc(),
                )
                return
            except (api.FailedPrecondition, api.NotFound):
                continue  # written since we read it: read again
        raise _kept_changing(f"document {key!r}")

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        encoded = {key: encode_data(key, data) for key, data in docs.items()}
        if not encoded:
            return set()
        chunks = _chunked(list(encoded.items()), lambda entry: approximate_size(entry[1]))
        with self._translated(f"writing {len(encoded)} documents"):
            if create_only:
                written = await _gather(self._create_new(chunk) for chunk in chunks)
                return set().union(*written)
            await _gather(self._upsert_all(chunk) for chunk in chunks)
        return set(encoded)

    async def _upsert_all(self, chunk: Sequence[tuple[str, Data]]) -> None:
        batch = self._client.batch()
        for key, fields in chunk:
            batch.set(
                self._doc(key),
                _upsert_fields(key, fields),
                merge=_UPSERT_PATHS,
            )
        await batch.commit(**self._rpc())

    async def _create_new(self, chunk: Sequence[tuple[str, Data]]) -> set[str]:
        """Create the documents of `chunk` that do not exist; returns the keys created."""
        pending = dict(chunk)
        for _ in range(_ATTEMPTS):
            if not pending:
                return set()
            batch = self._client.batch()
            for key, fields in pending.items():
                batch.create(self._doc(key), {"key": key, "data": fields, "version": 1})
            try:
                await batch.commit(**self._rpc())
                return set(pending)
            except api.AlreadyExists:  # one exists, so none was written: leave out all that do
                refs = [self._doc(key) for key in pending]
                for found in await self._get_all(refs, ["key"]):
                    pending.pop(found.get("key"), None)
        raise _kept_changing(f"{len(chunk)} documents")

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        if if_version is not None and if_version < 0:
            check_version(key, if_version, None)
        ref = self._doc(key)
        with self._translated(f"deleting document {key!r}"):
            for _ in range(_ATTEMPTS):
                if if_version is None:
                    option = self._client.write_option(exists=True)
                else:
                    found = await ref.get(["version"], **self._rpc())
                    if not found.exists:
                        return False
                    check_version(key, if_version, found.get("version"))
                    option = self._client.write_option(last_update_time=found.update_time)
                try:
                    await ref.delete(option=option, **self._rpc())
                    return True
                except api.NotFound:
                    if if_version is None:
                        return False
                except api.FailedPrecondition:
                    pass  # written since we read it: read again
        raise _kept_changing(f"document {key!r}")

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:  # plain `list` here would name this method
        check_limit(limit)
        if limit == 0:
            return []
        lower = (
            FieldFilter("key", ">", after) if after >= prefix else FieldFilter("key", ">=", prefix)
        )
        query = self._documents.where(filter=lower)
        upper = _above_prefix(prefix)
        if upper is not None:
            query = query.where(filter=FieldFilter("key", "<", upper))
        query = query.order_by("key").limit(min(limit, _MOST))
        with self._translated(f"listing documents under {prefix!r}"):
            found = await query.get(**self._rpc())
        return [_document(snapshot.get("key"), snapshot) for snapshot in found]

    # Queues

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        _check_queue(queue)
        fresh: dict[str, bytes] = {}
        for item_id, data in items:
            if not isinstance(item_id, str):
                raise InvalidRequestError(
                    f"queue {queue!r} has an item id {item_id!r} of type "
                    f"{type(item_id).__name__}; item ids are str"
                )
            if not isinstance(data, bytes):
                raise InvalidRequestError(
                    f"queue {queue!r} item {item_id!r} has data of type {type(data).__name__}; "
                    "queue items carry bytes: serialize the data first"
                )
            fresh.setdefault(item_id, bytes(data))
        if not fresh:
            return
        queue_ref = self._queues.document(document_id(queue))
        items_ref = queue_ref.collection("items")
        with self._translated(f"pushing {len(fresh)} items to queue {queue!r}"):
            # One atomic increment reserves a run of push-order numbers for these items.
            counted = await queue_ref.set(
                {"pushed": Increment(len(fresh))}, merge=True, **self._rpc()
            )
            first_seq = counted.transform_results[0].integer_value - len(fresh) + 1
            entries: builtins.list[tuple[AsyncDocumentReference, dict[str, Any]]] = [
                (
                    items_ref.document(document_id(item_id)),
                    {
                        "item_id": item_id,
                        "seq": seq,
                        "waiting": seq,
                        "data": data,
                        "deliveries": 0,
                        "receipt": None,
                    },
                )
                for seq, (item_id, data) in enumerate(fresh.items(), first_seq)
            ]
            chunks = _chunked(entries, lambda entry: len(entry[1]["data"]) + 200)
            await _gather(self._create_items(chunk) for chunk in chunks)

    async def _create_items(
        self, chunk: Sequence[tuple[AsyncDocumentReference, dict[str, Any]]]
    ) -> None:
        """Create the items of `chunk` whose ids are not in the queue already."""
        pending = dict(chunk)
        for _ in range(_ATTEMPTS):
            if not pending:
                return
            batch = self._client.batch()
            for ref, fields in pending.items():
                batch.create(ref, fields)
            try:
                await batch.commit(**self._rpc())
                return
            except api.AlreadyExists:  # one exists, so none was written: leave out all that do
                existing = {found.id for found in await self._get_all(list(pending), ["seq"])}
                pending = {ref: f for ref, f in pending.items() if ref.id not in existing}
        raise _kept_changing(f"{len(chunk)} items")

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        _check_queue(queue)
        check_limit(limit)
        check_lease(lease_s)
        if limit == 0:
            return []
        items = self._items(queue)
        claims: builtins.list[Claim] = []
        spread = 1
        with self._translated(f"claiming items from queue {queue!r}"):
            for _ in range(_ATTEMPTS):
                want = limit - len(claims)
                available = await self._available(items, min(want * spread, _MOST))
                if not available:
                    break
                picked = available[:want]
                if spread > 1:  # lost a race at the head: try where the others are not
                    picked = sorted(random.sample(available, len(picked)), key=_seq)
                token = uuid.uuid4().hex
                expires = self._clock.now() + lease_s
                writes = [(item, _lease(item, token, expires)) for item in picked]
                if not await self._commit_unchanged(writes):
                    spread = min(spread * 4, _MAX_SPREAD)
                    continue
                claims.extend(
                    Claim(
                        item.get("item_id"),
                        item.get("data"),
                        write["receipt"],
                        write["deliveries"],
                        expires,
                    )
                    for item, write in writes
                )
                if len(claims) == limit or len(available) < want * spread:
                    break
        return claims

    async def _available(
        self, items: AsyncCollectionReference, count: int
    ) -> builtins.list[Snapshot]:
        """The first `count` available items, after handing back every passed lease."""
        now = self._clock.now()
        expired_query = (
            items.where(filter=FieldFilter("lease_expires", "<=", now))
            .order_by("lease_expires")
            .select(_ITEM_STATE)
            .limit(_BATCH)
        )
        waiting_query = items.order_by("waiting").limit(count)
        expired, waiting = await asyncio.gather(
            expired_query.get(**self._rpc()), waiting_query.get(**self._rpc())
        )
        if not expired:
            return list(waiting)

        def hand_back(item: Snapshot) -> Write | None:
            expires = _field(item, "lease_expires")
            if expires is None or expires > now:
                return None  # renewed or claimed since
            return {"waiting": item.get("seq"), "lease_expires": DELETE_FIELD}

        while expired:
            await self._write_current(expired, hand_back)
            if len(expired) < _BATCH:
                break
            expired = await expired_query.get(**self._rpc())
        return list(await waiting_query.get(**self._rpc()))

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        _check_queue(queue)
        with self._translated(f"acking {len(receipts)} items of queue {queue!r}"):
            return await self._settle(queue, receipts, _remove)

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        _check_queue(queue)
        check_lease(lease_s)
        with self._translated(f"renewing {len(receipts)} leases in queue {queue!r}"):
            expires = self._clock.now() + lease_s

            def extend(item: Snapshot) -> Write:
                if lease_s == 0:  # handed back: first in line again, in its old place
                    return {"waiting": item.get("seq"), "lease_expires": DELETE_FIELD}
                return {"waiting": DELETE_FIELD, "lease_expires": expires}

            return await self._settle(queue, receipts, extend)

    async def _settle(
        self, queue: str, receipts: Sequence[str], write: Callable[[Snapshot], Write]
    ) -> set[str]:
        """Apply `write` to the items whose receipt is current; returns those receipts."""
        wanted: dict[str, set[str]] = {}
        for receipt in receipts:
            if not isinstance(receipt, str):
                continue
            token, _, item = receipt.partition(":")
            if len(token) == 32 and is_document_id(item):
                wanted.setdefault(item, set()).add(receipt)
        if not wanted:
            return set()
        items = self._items(queue)
        found = await self._get_all([items.document(item) for item in wanted], _ITEM_STATE)

        def if_current(item: Snapshot) -> Write | None:
            return write(item) if _field(item, "receipt") in wanted[item.id] else None

        done = await self._write_current(found, if_current)
        return {_field(item, "receipt") for item, _ in done}

    # Reads and writes

    async def _write_current(
        self, found: Sequence[Snapshot], plan: Plan
    ) -> builtins.list[tuple[Snapshot, Write]]:
        """Apply `plan` to documents as read; what changed since is read again and planned
        anew. Returns the writes made."""
        done: builtins.list[tuple[Snapshot, Write]] = []
        for chunk in _chunked(list(found), lambda item: 1):
            snapshots = chunk
            for _ in range(_ATTEMPTS):
                writes = [(item, w) for item in snapshots if (w := plan(item)) is not None]
                if not writes or await self._commit_unchanged(writes):
                    done.extend(writes)
                    break
                snapshots = await self._get_all([item.reference for item, _ in writes], _ITEM_STATE)
            else:
                raise _kept_changing(f"{len(chunk)} queue items")
        return done

    async def _commit_unchanged(self, writes: Sequence[tuple[Snapshot, Write]]) -> bool:
        """Commit all of `writes` if none of their documents changed since it was read."""
        batch = self._client.batch()
        for item, write in writes:
            option = self._client.write_option(last_update_time=item.update_time)
            if write == "delete":
                batch.delete(item.reference, option=option)
            else:
                batch.update(item.reference, write, option=option)
        try:
            await batch.commit(**self._rpc())
        except (api.FailedPrecondition, api.NotFound):
            return False
        return True

    async def _get_all(
        self, refs: Sequence[AsyncDocumentReference], fields: Sequence[str]
    ) -> builtins.list[Snapshot]:
        """The documents of `refs` that exist, with only `fields`."""
        found: builtins.list[Snapshot] = []
        for chunk in _chunked(list(refs), lambda ref: 1):
            async for snapshot in self._client.get_all(
                builtins.list(chunk), builtins.list(fields), **self._rpc()
            ):
                if snapshot.exists:
                    found.append(snapshot)
        return found

    def _doc(self, key: str) -> AsyncDocumentReference:
        if not isinstance(key, str):
            raise InvalidRequestError(
                f"document key {key!r} is a {type(key).__name__}; document keys are str"
            )
        ref: AsyncDocumentReference = self._documents.document(document_id(key))
        return ref

    def _items(self, queue: str) -> AsyncCollectionReference:
        items: AsyncCollectionReference = self._queues.document(document_id(queue)).collection(
            "items"
        )
        return items

    def _rpc(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": self._timeout_s}

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        if self._closed:
            raise BackendError(
                f"{action}: the Firestore store {self._namespace!r} is closed; "
                "make a new FirestoreStore to use it"
            )
        with translated(action, self._project):
            yield


_UPSERT_PATHS = ["key", "data", "version"]
"""Written as wholes by an unconditional put: `data` is replaced, not merged."""


def _upsert_fields(key: str, fields: Data) -> dict[str, Any]:
    return {"key": key, "data": fields, "version": Increment(1)}


def _document(key: str, snapshot: Snapshot) -> Document:
    return Document(key, decode_data(snapshot.get("data")), snapshot.get("version"))


def _remove(item: Snapshot) -> Write:
    return "delete"


def _field(snapshot: Snapshot, name: str) -> Any:
    fields = snapshot.to_dict() or {}
    return fields.get(name)


def _seq(item: Snapshot) -> int:
    seq: int = item.get("seq")
    return seq


def _lease(item: Snapshot, token: str, expires: float) -> dict[str, Any]:
    return {
        "waiting": DELETE_FIELD,
        "lease_expires": expires,
        "receipt": f"{token}:{item.id}",
        "deliveries": item.get("deliveries") + 1,
    }


def _check_queue(queue: object) -> None:
    if not isinstance(queue, str):
        raise InvalidRequestError(
            f"queue name {queue!r} is a {type(queue).__name__}; queue names are str"
        )


def _above_prefix(prefix: str) -> str | None:
    """The smallest string above every string that starts with `prefix` (None if none).

    Firestore orders strings by their UTF-8 bytes, which is Python's code point order.
    """
    while prefix:
        following = ord(prefix[-1]) + 1
        if following <= 0x10FFFF:
            if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be stored: skip them
                following = 0xE000
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None


def _chunked(values: Sequence[_T], size: Callable[[_T], int]) -> list[Sequence[_T]]:
    """`values` cut into runs that fit one commit: at most _BATCH of them and about
    _BATCH_BYTES by `size` (a single larger value goes alone)."""
    chunks: list[Sequence[_T]] = []
    start, total = 0, 0
    for index, value in enumerate(values):
        weight = size(value)
        if index > start and (index - start == _BATCH or total + weight > _BATCH_BYTES):
            chunks.append(values[start:index])
            start, total = index, 0
        total += weight
    if start < len(values):
        chunks.append(values[start:])
    return chunks


async def _gather(calls: Iterable[Awaitable[_T]]) -> list[_T]:
    """Await `calls`, at most _PARALLEL at once; raises the first failure after all end."""
    limiter = asyncio.Semaphore(_PARALLEL)

    async def limited(call: Awaitable[_T]) -> _T:
        async with limiter:
            return await call

    results = await asyncio.gather(*(limited(call) for call in calls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]  # no exceptions are left


def _kept_changing(what: str) -> BackendError:
    return BackendError(
        f"{what} kept changing while this store wrote to them ({_ATTEMPTS} tries); "
        "something else writes them without pause: find it, then retry"
    )
