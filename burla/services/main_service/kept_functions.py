"""Jobs' pickled functions in the Store, one document per function however many jobs run it.

A job's record names its function by digest (`function_digest`) and the function sits at
`functions/<digest>`: a function called job after job (a loop of calls, a notebook cell
run again) is written once, not with every record (a pickle carries the lines of its
source file, often tens of kilobytes). Records written before this kept the function in
themselves (`function`); read_function reads both.

A function goes when no job record names it any more (retention's sweep) and no job this
main_service holds runs it. Writing one and sweeping take turns, and a function named
since a sweep began is never swept by it, so a job never names a function that is gone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from typing import Any

import anyio

from burla.core.protocols import Store

FUNCTIONS_PREFIX = "functions/"


def function_digest(pickled: bytes) -> str:
    return hashlib.sha256(pickled).hexdigest()[:32]


def function_key(digest: str) -> str:
    return f"{FUNCTIONS_PREFIX}{digest}"


class KeptFunctions:
    """The functions this main_service has written (or found written), and their sweep."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._written: set[str] = set()
        self._named_since_sweep: set[str] = set()
        self._turns = anyio.Lock()

    async def keep(self, pickled: bytes, digest: str | None = None) -> str:
        """Have `pickled` (whose `digest` its caller may know already) in the Store; its
        digest, for a record to name."""
        digest = digest or function_digest(pickled)
        self._named_since_sweep.add(digest)
        if digest not in self._written:
            async with self._turns:
                await self.store.put(function_key(digest), {"function": pickled})
                self._written.add(digest)
        return digest

    async def sweep(self, named: Collection[str]) -> int:
        """Remove the functions none of `named` is (the digests the job records name and
        those of the jobs held in memory), but none named since the sweep began: how
        many went."""
        self._named_since_sweep = set()
        gone = 0
        after = ""
        while docs := await self.store.list(FUNCTIONS_PREFIX, after=after):
            after = docs[-1].key
            for doc in docs:
                digest = doc.key.removeprefix(FUNCTIONS_PREFIX)
                if digest in named:
                    continue
                async with self._turns:
                    if digest in self._named_since_sweep:
                        continue
                    self._written.discard(digest)
                    await self.store.delete(doc.key)
                    gone += 1
        return gone


def named_function(kept: Mapping[str, Any]) -> str | None:
    """The digest of the function a record's part (`kept`, `resume`) names, if it names
    one stored apart."""
    digest = kept.get("function_digest")
    return digest if isinstance(digest, str) else None


async def read_function(store: Store, kept: Mapping[str, Any]) -> bytes | None:
    """The pickled function a record's part (`kept`, `resume`) holds or names; None if it
    was uploaded instead (its `function_key`). LookupError if the function it names is
    gone."""
    digest = named_function(kept)
    if digest is None:
        pickled: bytes | None = kept.get("function")
        return pickled
    doc = await store.get(function_key(digest))
    if doc is None:
        raise LookupError(f"function {digest} is no longer kept")
    function: bytes = doc.data["function"]
    return function
