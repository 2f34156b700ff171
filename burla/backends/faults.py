"""Backend failures injected on purpose, to show what burla survives (BURLA_FAULTS).

`BURLA_FAULTS="store=0.05,blobs=0.02,seed=7,log=/tmp/faults.log"` makes every service of a
cluster that sees it (main_service, and the nodes it starts) fail that share of its Store
and BlobStore calls with TransientBackendError, as a backend that is briefly unreachable
does. Half of the failures come before the call reaches the backend; the other half,
for calls that are safe to repeat, after it was carried out (the answer was lost on its
way back), which is the harder case. Each failure is logged as one line to `log`.
"""

from __future__ import annotations

import builtins
import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from burla.core.errors import InvalidRequestError, TransientBackendError
from burla.core.protocols import BlobStore, Claim, Data, Document, Store

ENV = "BURLA_FAULTS"
_T = TypeVar("_T")
_Inner = TypeVar("_Inner", Store, BlobStore)


@dataclass(frozen=True)
class FaultPlan:
    store: float = 0.0
    """The share of Store calls that fail."""
    blobs: float = 0.0
    """The share of BlobStore calls that fail."""
    seed: int | None = None
    log: str | None = None
    """A file that gets one line per failure injected."""


def fault_plan(env: Mapping[str, str]) -> FaultPlan | None:
    """The plan BURLA_FAULTS describes, or None when it is unset or empty."""
    text = env.get(ENV, "").strip()
    if not text:
        return None
    values: dict[str, str] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        values[name.strip()] = value.strip()
    unknown = sorted(set(values) - {"store", "blobs", "seed", "log"})
    if unknown:
        raise InvalidRequestError(
            f"{ENV} has unknown part {unknown[0]!r}; it takes store=SHARE,blobs=SHARE,"
            "seed=N,log=PATH"
        )
    try:
        plan = FaultPlan(
            store=float(values.get("store", 0)),
            blobs=float(values.get("blobs", 0)),
            seed=int(values["seed"]) if "seed" in values else None,
            log=values.get("log") or None,
        )
    except ValueError as error:
        raise InvalidRequestError(f"{ENV}={text!r} is not understood: {error}") from None
    if not (0 <= plan.store < 1 and 0 <= plan.blobs < 1):
        raise InvalidRequestError(f"{ENV}: shares of calls to fail are between 0 and 1")
    return plan


class _Injector:
    def __init__(
        self, share: float, plan: FaultPlan, backend: str, rng: random.Random | None
    ) -> None:
        self._share = share
        seed = None if plan.seed is None else f"{plan.seed}/{backend}/{os.getpid()}"
        self._rng = rng or random.Random(seed)
        self._log = plan.log
        self._backend = backend
        self.injected = 0

    async def call(
        self, what: str, call: Callable[[], Awaitable[_T]], *, repeatable: bool = True
    ) -> _T:
        roll = self._rng.random()
        if roll < self._share / 2:
            self._fail(what, "before")
        result = await call()
        if repeatable and roll < self._share:
            self._fail(what, "after")
        return result

    def _fail(self, what: str, when: str) -> None:
        self.injected += 1
        if self._log:
            with open(self._log, "a") as log:
                log.write(f"{os.getpid()} {self._backend} {what} {when}\n")
        raise TransientBackendError(
            f"injected failure of the {self._backend}'s {what} ({when} the call; {ENV})"
        )


class _Faulty(Generic[_Inner]):
    """A backend in front of `inner` that fails a share of the calls to it."""

    def __init__(self, inner: _Inner, faults: _Injector) -> None:
        self.inner: _Inner = inner
        self._faults = faults

    @property
    def injected(self) -> int:
        """How many calls it failed so far."""
        return self._faults.injected


class FaultyStore(_Faulty[Store]):
    """A Store that fails a share of its calls (see the module's docstring)."""

    def __init__(self, store: Store, plan: FaultPlan, rng: random.Random | None = None) -> None:
        super().__init__(store, _Injector(plan.store, plan, "Store", rng))

    async def get(self, key: str) -> Document | None:
        return await self._faults.call("get", lambda: self.inner.get(key))

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        return await self._faults.call(
            "put",
            lambda: self.inner.put(key, data, if_version=if_version),
            repeatable=if_version is None,
        )

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        return await self._faults.call(
            "put_many", lambda: self.inner.put_many(docs, create_only=create_only)
        )

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        return await self._faults.call(
            "delete",
            lambda: self.inner.delete(key, if_version=if_version),
            repeatable=if_version is None,
        )

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:
        return await self._faults.call(
            "list", lambda: self.inner.list(prefix, after=after, limit=limit)
        )

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        await self._faults.call("push", lambda: self.inner.push(queue, items))

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        # A claim whose answer was lost leaves its items leased to no one until the lease
        # ends: repeatable, but slow to recover from, so it fails only before the call.
        return await self._faults.call(
            "claim",
            lambda: self.inner.claim(queue, limit=limit, lease_s=lease_s),
            repeatable=False,
        )

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        return await self._faults.call("ack", lambda: self.inner.ack(queue, receipts))

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        return await self._faults.call(
            "renew", lambda: self.inner.renew(queue, receipts, lease_s=lease_s)
        )


class FaultyBlobStore(_Faulty[BlobStore]):
    """A BlobStore that fails a share of its calls (see the module's docstring)."""

    def __init__(self, blobs: BlobStore, plan: FaultPlan, rng: random.Random | None = None) -> None:
        super().__init__(blobs, _Injector(plan.blobs, plan, "blob store", rng))

    async def put(self, key: str, data: bytes) -> None:
        await self._faults.call("put", lambda: self.inner.put(key, data))

    async def get(self, key: str) -> bytes:
        return await self._faults.call("get", lambda: self.inner.get(key))

    async def list(self, prefix: str) -> builtins.list[str]:
        return await self._faults.call("list", lambda: self.inner.list(prefix))

    async def delete_prefix(self, prefix: str) -> int:
        return await self._faults.call("delete_prefix", lambda: self.inner.delete_prefix(prefix))

    async def signed_url(self, key: str, *, method: Literal["GET", "PUT"], expires_s: float) -> str:
        return await self._faults.call(
            "signed_url", lambda: self.inner.signed_url(key, method=method, expires_s=expires_s)
        )
