"""How finished results sit in the Store: in pages, one document per batch a node writes.

A node writes the results of the inputs it finished since its last report as pages of
up to PAGE_RESULTS results and about PAGE_BYTES, rather than a document per result: on
Firestore, which takes about 10,000 writes a second per database, a document per result
is what held a million one-second inputs on 96,000 CPUs to a sixth of their pace.

A page holds its results as a job stream's row does (burla.core.wire): indices, kinds and
sizes, and their bytes one after another. Its key starts with its lowest input's index,
then names the delivery of that input (a node) or says main_service wrote it (a failure),
so two writes of the same page meet at one key (the first wins) and pages of different
deliveries never do. An input run twice (its node was lost, its lease ran out) may be in
two pages: readers take the first in key order.
"""

from __future__ import annotations

import functools
import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, repeat
from operator import itemgetter
from typing import Any, TypeVar

from burla.core import wire
from burla.core.protocols import BlobStore, Data, Document, Store
from burla.services.store_keys import results_prefix

PAGE_RESULTS = 500
PAGE_BYTES = 512 << 10
"""A page is cut before it passes this many bytes of results: Firestore holds documents of
up to 1 MiB. A result bigger than this goes to the blob store, and its page holds its key."""
RESULT_PAGES_PER_S = 200.0
"""Pages of results the nodes of a big job write a second together, at most, while they
run its inputs: a job's results are a new key range, which Firestore takes at 500
writes a second at first, and each node's last results go at once, besides."""
IN_BLOB = "@blob"
"""Ends the kind of a result kept in the blob store: the page holds the blob's key."""
FAILED = "failed"
"""Ends the key of the page main_service writes for an input that failed without raising."""
RESUMED = "resumed"
"""Ends the key of a page main_service writes for a job that resumes another: the
results it copied from that job."""

Result = tuple[int, str, bytes]
"""An input's index, its result's kind (see report_wire.ResultsReport) and its bytes."""
_Row = TypeVar("_Row", bound=tuple[Any, ...])
Written = tuple[int, str, bytes, str]
"""A result to write: index, kind, bytes, and who wrote it (delivery_tag, or FAILED)."""


def results_every_s(nodes: int) -> float:
    """How often each node of a big job that may run on `nodes` nodes writes its results
    at most while busy: RESULT_PAGES_PER_S among them all."""
    return nodes / RESULT_PAGES_PER_S


def page_key(job_id: str, first: int, writer: str) -> str:
    return f"{results_prefix(job_id)}{first:09d}-{writer}"


@functools.lru_cache(maxsize=1024)
def delivery_tag(receipt: str) -> str:
    """A short name for one delivery of an input (its claim's receipt), fit for a key.
    The inputs of a run share their run's receipt, so it is worked out once per run."""
    return hashlib.blake2b(receipt.encode(), digest_size=8).hexdigest()


async def write_results(
    store: Store, blobs: BlobStore, job_id: str, results: Iterable[Written]
) -> None:
    """Make `results` durable: each big one in the blob store, then the pages of all."""
    paged: list[Written] = []
    for index, kind, data, writer in results:
        if len(data) > PAGE_BYTES:
            key = f"{results_prefix(job_id)}{index:09d}-{writer}"
            await blobs.put(key, data)
            kind, data = f"{kind}{IN_BLOB}", key.encode()
        paged.append((index, kind, data, writer))
    await store.put_many(pages(job_id, paged), create_only=True)


async def write_succeeded(
    store: Store,
    blobs: BlobStore,
    job_id: str,
    indices: Sequence[int],
    results: Sequence[bytes],
    receipts: Sequence[str],
) -> None:
    """Make the results of inputs that succeeded durable (input `indices[n]` has result
    `results[n]`, delivered under `receipts[n]`): the pages write_results writes, made
    column by column rather than a row per result, for a node writes thousands a second."""
    if max(map(len, results), default=0) > PAGE_BYTES:  # one goes to the blob store
        writers = map(delivery_tag, receipts)
        await write_results(store, blobs, job_id, zip(indices, repeat("ok"), results, writers))
        return
    order = sorted(range(len(indices)), key=indices.__getitem__)
    sizes = [len(results[n]) for n in order]
    written: dict[str, Data] = {}
    for start, end in page_cuts(sizes):
        rows = order[start:end]
        first = rows[0]
        key = page_key(job_id, indices[first], delivery_tag(receipts[first]))
        written[key] = {
            "indices": [indices[n] for n in rows],
            "kinds": ["ok"] * len(rows),
            "sizes": sizes[start:end],
            "payload": b"".join([results[n] for n in rows]),
        }
    await store.put_many(written, create_only=True)


def page_cuts(sizes: Sequence[int], most: int = PAGE_RESULTS) -> list[tuple[int, int]]:
    """Where rows of these sizes (in index order) are cut into pages, as cut_pages cuts
    them: (start, end) of each page. A page ends before `most` rows, and before the row
    that passes PAGE_BYTES, unless that row is its first."""
    ends = list(accumulate(sizes))
    cuts: list[tuple[int, int]] = []
    start = 0
    while start < len(ends):
        before = ends[start - 1] if start else 0
        fit = bisect_right(ends, before + PAGE_BYTES, lo=start)
        end = min(start + most, max(start + 1, fit))
        cuts.append((start, end))
        start = end
    return cuts


def pages(job_id: str, results: Iterable[Written]) -> dict[str, Data]:
    """The pages that hold `results`, in index order, by key."""
    return {_key(job_id, page): page_data(page) for page in cut_pages(results)}


def cut_pages(rows: Iterable[_Row]) -> list[list[_Row]]:
    """Rows (an index, a kind and bytes first) in index order, cut into pages: at most
    PAGE_RESULTS rows, and no more than PAGE_BYTES of bytes unless a row alone has more."""
    cut: list[list[_Row]] = []
    size = 0
    for row in sorted(rows, key=itemgetter(0)):
        if not cut or len(cut[-1]) == PAGE_RESULTS or size + len(row[2]) > PAGE_BYTES:
            cut.append([])
            size = 0
        cut[-1].append(row)
        size += len(row[2])
    return cut


def page_data(results: Iterable[tuple[Any, ...]]) -> Data:
    """A page's fields: the index, kind and bytes that start each of `results`."""
    rows = list(results)
    return {
        "indices": [row[0] for row in rows],
        "kinds": [row[1] for row in rows],
        "sizes": [len(row[2]) for row in rows],
        "payload": b"".join(row[2] for row in rows),
    }


def results_of(page: Document) -> Iterator[Result]:
    """The results a page holds, in index order, a big one's kind ending in IN_BLOB and
    its bytes naming its blob; InvalidRequestError for a document that is no page."""
    data = page.data
    return wire.results_in_row(data["indices"], data["kinds"], data["sizes"], data["payload"])


async def read_results(blobs: BlobStore, page: Document) -> list[Result]:
    """The results a page holds, in index order, big ones read from the blob store."""
    found: list[Result] = []
    for index, kind, data in results_of(page):
        if kind.endswith(IN_BLOB):
            kind, data = kind.removesuffix(IN_BLOB), await blobs.get(data.decode())
        found.append((index, kind, data))
    return found


async def stored_results(
    store: Store, blobs: BlobStore, job_id: str
) -> dict[int, tuple[str, bytes]]:
    """Every result of a job the Store holds (the first page's, for an input run twice),
    by index."""
    found: dict[int, tuple[str, bytes]] = {}
    after = ""
    while docs := await store.list(results_prefix(job_id), after=after):
        after = docs[-1].key
        for doc in docs:
            for index, kind, payload in await read_results(blobs, doc):
                found.setdefault(index, (kind, payload))
    return found


def _key(job_id: str, page: list[Written]) -> str:
    first, _, _, writer = page[0]
    return page_key(job_id, first, writer)
