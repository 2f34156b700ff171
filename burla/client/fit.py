"""Fitting a job into one request: which of its parts go inline, which through the blob store.

main_service takes a job's request up to a limit (burla.core.limits). Inputs over
INLINE_LIMIT always go through the blob store; when the rest is still over the limit, the
biggest parts follow them until the request fits. Each part that moves leaves a reference
behind, so a job of very many small inputs cannot fit, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from burla.core import wire
from burla.core.errors import PayloadTooLargeError
from burla.core.limits import JOB_REQUEST_ENV

INLINE_LIMIT = 1 << 20
"""Inputs up to this size travel in the job request; bigger ones go to the blob store."""
KEY_SIZE = 48
"""At least as long as a key main_service gives for an upload (uploads/<16 hex>/<n>)."""
FUNCTION = -1
"""Stands for the function among the parts that may move."""


def fit(head_size: int, function_size: int, sizes: Sequence[int | None], limit: int) -> set[int]:
    """The parts to upload (input indices, FUNCTION for the function) so that the request
    is at most `limit` bytes. `sizes[n]` is input n's pickled size, None for one pickled
    straight into a file (always uploaded)."""
    moved = {n for n, size in enumerate(sizes) if size is None or size > INLINE_LIMIT}
    inline = {n: size for n, size in enumerate(sizes) if n not in moved and size is not None}
    if function_size > INLINE_LIMIT:
        moved.add(FUNCTION)
    else:
        inline[FUNCTION] = function_size
    total = wire.PREFIX_SIZE + head_size + sum(_reference_size(n) for n in moved)
    # At most what the inline parts add, without a look at each (a job of many inputs):
    # none adds more than the biggest index and the biggest size would.
    biggest = max(inline.values(), default=0)
    most = _inline_size(len(sizes), biggest) - biggest
    if total + sum(inline.values()) + len(inline) * most <= limit:
        return moved
    total += sum(_inline_size(n, size) for n, size in inline.items())
    if total <= limit:
        return moved
    for part, size in sorted(inline.items(), key=lambda item: -item[1]):
        saved = _inline_size(part, size) - _reference_size(part)
        if saved <= 0:
            break
        moved.add(part)
        total -= saved
        if total <= limit:
            return moved
    raise PayloadTooLargeError(
        f"a job of {len(sizes)} inputs needs a request of at least {total} bytes, even with "
        f"its biggest inputs in the blob store; the cluster takes {limit} bytes "
        f"({JOB_REQUEST_ENV}). Split the inputs over several calls of remote_parallel_map, "
        f"or raise {JOB_REQUEST_ENV} where main_service runs and here"
    )


def _reference_size(part: int) -> int:
    """What a part in the blob store adds to the request: its key, in its frame."""
    if part == FUNCTION:
        return len(',"function_key":""') + KEY_SIZE
    return wire.PREFIX_SIZE + len('{"i":,"blob":""}') + len(str(part)) + KEY_SIZE


def _inline_size(part: int, size: int) -> int:
    """At most what an inline part adds to the request: an input alone in its run (a run
    of several shares one frame)."""
    if part == FUNCTION:
        return size  # it travels in the job's own frame
    return wire.PREFIX_SIZE + len('{"from":,"sizes":[]}') + len(str(part)) + len(str(size)) + size
