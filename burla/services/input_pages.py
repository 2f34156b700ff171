"""A job's inputs kept in the Store beside its results, for as long as its results are
kept: what lets a failed input be run again on a user's own machine, or a job be run
again from a shell, after it ended.

The queue holds each input until it is done; these pages keep them after. Inputs sit
in pages as results do (burla.services.result_pages: up to 500 inputs and about 512 KiB
each), an inline input's pickled arguments or a big input's blob key. A page's
key ends with the index of its last input, so the page that holds input `n` is the
first one listed after the key of `n - 1`.
"""

from __future__ import annotations

from collections.abc import Iterable

from burla.core import wire
from burla.core.errors import NotFoundError
from burla.core.protocols import Data, Store
from burla.services.result_pages import cut_pages, page_data
from burla.services.store_keys import IN_BLOB, INLINE, inputs_prefix

INLINE_KIND = "inline"
BLOB_KIND = "blob"
_KINDS = {INLINE[0]: INLINE_KIND, IN_BLOB[0]: BLOB_KIND}


def page_key(job_id: str, last: int) -> str:
    return f"{inputs_prefix(job_id)}{last:09d}"


def input_pages(job_id: str, items: Iterable[tuple[str, bytes]]) -> dict[str, Data]:
    """The pages that keep a job's queue items (id: the input's index; data: INLINE and
    the pickled arguments, or IN_BLOB and the blob key), by key."""
    rows = ((int(item_id), _KINDS[data[0]], data[1:]) for item_id, data in items)
    return {page_key(job_id, page[-1][0]): page_data(page) for page in cut_pages(rows)}


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
