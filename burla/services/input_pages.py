"""A job's inputs kept in the Store beside its results, for as long as its results are
kept: what lets a failed input be run again on a user's own machine, or a job be run
again from a shell, after it ended.

The queue holds each input until it is done; these pages keep them after. Inputs sit
in pages as results do (burla.services.result_pages: about 512 KiB each, but up to
PAGE_INPUTS inputs), an inline input's pickled arguments or a big input's blob key. A page's
key ends with the index of its last input, so the page that holds input `n` is the
first one listed after the key of `n - 1`.

A job that resumes another (burla.core.resume) compares its inputs with these by a
digest of each one's pickled bytes: an inline input's is worked out from the page, a big
one's (its bytes are in the blob store, which main_service does not read) is the digest
its client sent with it, kept in the page's "digests" (hex; "" for an inline input).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from burla.core import wire
from burla.core.errors import NotFoundError
from burla.core.protocols import Data, Store
from burla.core.resume import input_digest
from burla.services.result_pages import page_cuts
from burla.services.store_keys import IN_BLOB, INLINE, inputs_prefix

PAGE_INPUTS = 2_000
"""Inputs a page keeps at most: a big job's pages are written before its queue's runs
(which read them), at 500 writes a second to a new key range on Firestore: 500 pages
for a million inputs."""
INLINE_KIND = "inline"
BLOB_KIND = "blob"
_KINDS = {INLINE[0]: INLINE_KIND, IN_BLOB[0]: BLOB_KIND}


def page_key(job_id: str, last: int) -> str:
    return f"{inputs_prefix(job_id)}{last:09d}"


def input_pages(
    job_id: str, items: Iterable[tuple[str, bytes]], digests: Mapping[int, bytes] | None = None
) -> dict[str, Data]:
    """The pages that keep a job's queue items (id: the input's index; data: INLINE and
    the pickled arguments, or IN_BLOB and the blob key), by key, with the `digests` of
    the big inputs that have one."""
    # Column by column (see result_pages.page_cuts): a job may have a million inputs.
    items = list(items)
    indices = [int(item_id) for item_id, _ in items]
    order = sorted(range(len(indices)), key=indices.__getitem__)
    queued = [items[n][1] for n in order]
    sizes = [len(data) - 1 for data in queued]
    pages: dict[str, Data] = {}
    for start, end in page_cuts(sizes, PAGE_INPUTS):
        page = [indices[n] for n in order[start:end]]
        rows = queued[start:end]
        data: Data = {
            "indices": page,
            "kinds": [_KINDS[row[0]] for row in rows],
            "sizes": sizes[start:end],
            "payload": b"".join([row[1:] for row in rows]),
        }
        if digests and any(index in digests for index in page):
            data["digests"] = [digests[i].hex() if i in digests else "" for i in page]
        pages[page_key(job_id, page[-1])] = data
    return pages


def kept_bytes(pages: dict[str, Data]) -> int:
    """Bytes the pages keep."""
    return sum(len(page["payload"]) for page in pages.values())


async def kept_input(store: Store, job_id: str, index: int) -> tuple[str, bytes]:
    """Input `index` of the job as kept: (INLINE_KIND, its pickled arguments) or
    (BLOB_KIND, the key of the blob that holds them). NotFoundError if it is not kept."""
    after = page_key(job_id, index - 1) if index > 0 else ""
    for page in await store.list(inputs_prefix(job_id), after=after, limit=1):
        data = page.data
        for found, kind, payload in wire.results_in_row(
            data["indices"], data["kinds"], data["sizes"], data["payload"]
        ):
            if found == index:
                return kind, payload
    raise NotFoundError(f"job {job_id} has no input {index} kept")


async def kept_page(store: Store, job_id: str, after: int) -> tuple[dict[str, Any], bytes]:
    """The page of the job's kept inputs that follows input `after` (-1: the first), as a
    frame: its header (indices, kinds, sizes, and "next": the last index, or None for
    the last page) and its bytes (a big input's are its blob key)."""
    prefix = inputs_prefix(job_id)
    start = page_key(job_id, after) if after >= 0 else ""
    pages = await store.list(prefix, after=start, limit=2)
    if not pages:
        return {"indices": [], "kinds": [], "sizes": [], "next": None}, b""
    data = pages[0].data
    header = {key: data[key] for key in ("indices", "kinds", "sizes")}
    header["next"] = data["indices"][-1] if len(pages) > 1 else None
    return header, data["payload"]


async def kept_digests(store: Store, job_id: str) -> list[bytes | None]:
    """The digest of each input the job keeps, in index order (None: a big input kept
    without one). Fewer than the job had when its pages are no longer all kept."""
    found: list[bytes | None] = []
    after = ""
    while pages := await store.list(inputs_prefix(job_id), after=after):
        after = pages[-1].key
        for page in pages:
            data = page.data
            digests = data.get("digests") or [""] * len(data["indices"])
            rows = wire.results_in_row(
                data["indices"], data["kinds"], data["sizes"], data["payload"]
            )
            for (index, kind, payload), digest in zip(rows, digests, strict=True):
                if index != len(found):
                    return found  # a page is missing: the job keeps its inputs no more
                if kind == INLINE_KIND:
                    found.append(input_digest(payload))
                else:
                    found.append(bytes.fromhex(digest) if digest else None)
    return found
