"""Inputs that ride with a node's assignment: no queue item, no claim, no ack.

A job small enough for an item per input (input_runs.run_length 1) has its inputs
written to its input pages with its first record, or before one of them is queued
again (main_service.job_driver), not before its nodes hear of it. main_service hands
each node it assigns at the job's start as many inputs as it runs at once, in the
assignment itself (link_wire.Assign), and queues only the rest. A job queued in runs
hands each of its first nodes half its share (input_runs.handed_each), then writes its
pages and queues the rest in runs: its nodes work from the start, however long the
queue's writes take. The node
starts them as the assignment arrives, under a receipt that names no queue item (its
node's handed_receipt): nothing of them is renewed, acked or handed back in the queue.
main_service holds them as the node's (core.inputs.InputsHandedOut) and queues one on
its own (input_runs.one_input, read from the pages) when it comes back: a retry, a
worker or the node lost. A main_service that takes the job over queues every input it
finds unfinished the same way (an item already in the queue is left as it is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from burla.core.protocols import Claim

HANDED_PREFIX = "handed-out:"
HANDED_BYTES = 16 << 20
"""Bytes of inputs one assignment hands out at most, past its one input per worker."""

Item = tuple[str, bytes]


def handed_receipt(node_id: str) -> str:
    """The receipt a node's handed-out inputs go under, in its claims and its results'
    pages: one per node, so that pages of two nodes never share a key."""
    return f"{HANDED_PREFIX}{node_id}"


def is_handed(receipt: str) -> bool:
    """Whether `receipt` is a handed-out input's, which no queue holds."""
    return receipt.startswith(HANDED_PREFIX)


def queued_receipts(receipts: Sequence[str]) -> list[str]:
    """The receipts of queue items, once each (the inputs of a run share its receipt)."""
    return [receipt for receipt in dict.fromkeys(receipts) if not is_handed(receipt)]


def handed_payload(items: Sequence[Item]) -> tuple[tuple[int, ...], tuple[int, ...], bytes]:
    """Handed-out inputs as an assignment carries them: indices, sizes and bytes (each
    input as its queue item would hold it)."""
    indices = tuple(int(item_id) for item_id, _ in items)
    return indices, tuple(len(data) for _, data in items), b"".join(data for _, data in items)


def handed_claims(
    node_id: str, indices: Sequence[int], sizes: Sequence[int], payload: bytes
) -> list[Claim]:
    """The inputs an assignment handed out, as claims of the node's handed_receipt."""
    claims: list[Claim] = []
    offset = 0
    receipt = handed_receipt(node_id)
    for index, size in zip(indices, sizes, strict=True):
        data = payload[offset : offset + size]
        offset += size
        claims.append(Claim(str(index), data, receipt, 1, math.inf))
    return claims
