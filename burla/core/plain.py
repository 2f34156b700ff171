"""Plain values pickled by the standard library: the bytes cloudpickle would write, at a
fraction of the cost (cloudpickle makes a Pickler per call, a few microseconds, which a
job of many small inputs pays per input and per result)."""

from __future__ import annotations

import pickle
from typing import Any

import cloudpickle

PLAIN_TYPES = frozenset({int, float, str, bytes, bool, type(None)})
"""Values that pickle the same by either pickler: no code, no class of the caller's."""
SMALL_PLAIN = frozenset({int, float, bool, type(None)})
"""Plain values with no length to look at before pickling."""
PLAIN_PROTOCOL = cloudpickle.DEFAULT_PROTOCOL


def dumps_plain(value: Any) -> bytes | None:
    """`value` pickled, if it is plain or a tuple of plain values; else None (it needs
    cloudpickle, which can ship the caller's own classes and functions)."""
    kind = type(value)
    if kind in PLAIN_TYPES or (kind is tuple and all(type(v) in PLAIN_TYPES for v in value)):
        return pickle.dumps(value, protocol=PLAIN_PROTOCOL)
    return None
