"""The status file: which input a worker is running, and since when.

The worker writes it before and after every input; its node reads it when the worker
dies (to name the input that killed it) or runs long (to enforce the job's timeout).
Standard library only: the node reads it without loading anything the worker needs.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

STATUS = struct.Struct("<qd")
"""The status file: index of the input running (-1: none) and when it started (epoch s)."""


class StatusFile:
    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.set(-1)

    def set(self, index: int) -> None:
        os.pwrite(self._fd, STATUS.pack(index, time.time()), 0)


@dataclass(frozen=True, slots=True)
class Status:
    """The input a worker is running, and since when (epoch seconds)."""

    index: int
    started_at: float


def read_status(path: Path) -> Status | None:
    """What the worker was running, or None if nothing (or no status was written)."""
    try:
        data = path.read_bytes()[: STATUS.size]
    except FileNotFoundError:
        return None
    if len(data) < STATUS.size:
        return None
    index, started = STATUS.unpack(data)
    return Status(index, started) if index >= 0 else None
