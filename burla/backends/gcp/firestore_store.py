"""FirestoreStore: the Store protocol on Google Cloud Firestore, for clusters on Google Cloud.

Everything a store holds lives under one namespace document, `burla/<namespace>`, so many
clusters (and many tests) share one database without meeting:

    burla/<ns>/documents/<key id>      {key, data, version}
    burla/<ns>/queues/...              leased work queues (see firestore_queues)

Ids are escaped keys, queue names and item ids (see firestore_values); lists filter and
sort on the `key` field. Every query needs only Firestore's automatic single-field
indexes, and no call holds a lock: compare-and-set is a write with a precondition on the
update time that was read (see firestore_calls).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from google.api_core import exceptions as api
from google.cloud.firestore_v1 import AsyncClient, AsyncDocumentReference, FieldFilter, Increment

from burla.backends.gcp.firestore_calls import (
    ATTEMPTS,
    FirestoreCalls,
    Snapshot,
    chunked,
    gather,
    kept_changing,
)
from burla.backends.gcp.firestore_errors import translated
from burla.backends.gcp.firestore_queues import FirestoreQueues
from burla.backends.gcp.firestore_values import (
    approximate_size,
    decode_data,
    document_id,
    encode_data,
)
from burla.backends.key_range import above_prefix
from burla.backends.store_rules import (
    check_claim,
    check_if_version,
    check_items,
    check_lease,
    check_queue,
    check_version,
    nothing_asked,
)
from burla.core.clock import Clock, WallClock
from burla.core.errors import BackendError, InvalidRequestError
from burla.core.protocols import Claim, Data, Document

_WALL_CLOCK = WallClock()

_ROOT = "burla"
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MOST = 2**31 - 1
"""A query `limit` above every real count, within Firestore's 32-bit limits."""


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
        with translated("connecting to Firestore", project):
            client = client if client is not None else AsyncClient(project=project)
        if client.project != project:
            raise InvalidRequestError(
                f"the Firestore client is for project {client.project!r}, not {project!r}: "
                "make the client for the store's project"
            )
        self._project = project
        self._namespace = namespace
        self._calls = FirestoreCalls(client, timeout_s)
        self._client = client
        root = client.document(_ROOT, namespace)
        self._documents = root.collection("documents")
        self._queues = FirestoreQueues(self._calls, root.collection("queues"), clock)
        self._closed = False

    @property
    def namespace(self) -> str:
        return self._namespace

    async def close(self) -> None:
        """Close the connection to Firestore; later calls raise BackendError."""
        if not self._closed:
            self._closed = True
            await self._calls.close()

    # Documents

    async def get(self, key: str) -> Document | None:
        with self._translated(f"reading document {key!r}"):
            snapshot = await self._doc(key).get(**self._calls.rpc())
        if not snapshot.exists:
            return None
        return _document(key, snapshot)

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        fields = encode_data(key, data)
        check_if_version(key, if_version)
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
            **self._calls.rpc(),
        )
        version: int = result.transform_results[0].integer_value
        return version

    async def _create(self, ref: AsyncDocumentReference, key: str, fields: Data) -> None:
        for _ in range(ATTEMPTS):
            try:
                await ref.create({"key": key, "data": fields, "version": 1}, **self._calls.rpc())
                return
            except api.AlreadyExists:
                found = await ref.get(["version"], **self._calls.rpc())
                if found.exists:
                    check_version(key, 0, found.get("version"))
        raise kept_changing(f"document {key!r}")

    async def _replace(
        self, ref: AsyncDocumentReference, key: str, fields: Data, if_version: int
    ) -> None:
        for _ in range(ATTEMPTS):
            found = await ref.get(["version"], **self._calls.rpc())
            check_version(key, if_version, found.get("version") if found.exists else None)
            option = self._client.write_option(last_update_time=found.update_time)
            try:
                await ref.update(
                    {"key": key, "data": fields, "version": if_version + 1},
                    option=option,
                    **self._calls.rpc(),
                )
                return
            except (api.FailedPrecondition, api.NotFound):
                continue  # written since we read it: read again
        raise kept_changing(f"document {key!r}")

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        encoded = {key: encode_data(key, data) for key, data in docs.items()}
        refs = {key: self._doc(key) for key in encoded}
        with self._translated(f"writing {len(encoded)} documents"):
            if create_only:
                entries = [
                    (refs[key], {"key": key, "data": fields, "version": 1})
                    for key, fields in encoded.items()
                ]
                created = await self._calls.create_missing(entries)
                return {key for key, ref in refs.items() if ref.path in created}
            chunks = chunked(builtins.list(encoded.items()), lambda doc: approximate_size(doc[1]))
            await gather(self._upsert_all(chunk, refs) for chunk in chunks)
        return set(encoded)

    async def _upsert_all(
        self, docs: Sequence[tuple[str, Data]], refs: Mapping[str, AsyncDocumentReference]
    ) -> None:
        batch = self._client.batch()
        for key, fields in docs:
            batch.set(refs[key], _upsert_fields(key, fields), merge=_UPSERT_PATHS)
        await batch.commit(**self._calls.rpc())

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        check_if_version(key, if_version)
        ref = self._doc(key)
        with self._translated(f"deleting document {key!r}"):
            for _ in range(ATTEMPTS):
                if if_version is None:
                    option = self._client.write_option(exists=True)
                else:
                    found = await ref.get(["version"], **self._calls.rpc())
                    if not found.exists:
                        return False
                    check_version(key, if_version, found.get("version"))
                    option = self._client.write_option(last_update_time=found.update_time)
                try:
                    await ref.delete(option=option, **self._calls.rpc())
                    return True
                except api.NotFound:
                    if if_version is None:
                        return False
                except api.FailedPrecondition:
                    pass  # written since we read it: read again
        raise kept_changing(f"document {key!r}")

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:  # plain `list` here would name this method
        if nothing_asked(limit):
            return []
        lower = (
            FieldFilter("key", ">", after) if after >= prefix else FieldFilter("key", ">=", prefix)
        )
        query = self._documents.where(filter=lower)
        upper = above_prefix(prefix)
        if upper is not None:
            query = query.where(filter=FieldFilter("key", "<", upper))
        query = query.order_by("key").limit(min(limit, _MOST))
        with self._translated(f"listing documents under {prefix!r}"):
            found = await query.get(**self._calls.rpc())
        return [_document(snapshot.get("key"), snapshot) for snapshot in found]

    def _doc(self, key: str) -> AsyncDocumentReference:
        if not isinstance(key, str):
            raise InvalidRequestError(
                f"document key {key!r} is a {type(key).__name__}; document keys are str"
            )
        ref: AsyncDocumentReference = self._documents.document(document_id(key))
        return ref

    # Queues

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        check_queue(queue)
        check_items(queue, items)
        fresh: dict[str, bytes] = {}
        for item_id, data in items:
            fresh.setdefault(item_id, bytes(data))  # the first of a repeated id wins
        if fresh:
            with self._translated(f"pushing {len(fresh)} items to queue {queue!r}"):
                await self._queues.push(queue, fresh)

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        check_claim(queue, limit, lease_s)
        if limit == 0:
            return []
        with self._translated(f"claiming items from queue {queue!r}"):
            return await self._queues.claim(queue, limit, lease_s)

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        check_queue(queue)
        with self._translated(f"acking {len(receipts)} items of queue {queue!r}"):
            return await self._queues.ack(queue, receipts)

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        check_queue(queue)
        check_lease(lease_s)
        with self._translated(f"renewing {len(receipts)} leases in queue {queue!r}"):
            return await self._queues.renew(queue, receipts, lease_s)

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
