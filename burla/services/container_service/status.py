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


SPOOL_ENTRY = struct.Struct("<qHQ")
"""A spooled result's head: input index, length of its kind, length of its bytes."""


def spool_path(status_path: Path) -> Path:
    """Where a worker keeps the results it has not sent yet, beside its status file."""
    return status_path.with_name(status_path.name + ".results")


class ResultSpool:
    """The finished results a worker has not sent to its node yet, written as each input
    ends: the kernel keeps a write even if the process dies the next moment, so a node
    whose worker died reads them here, and only the input that was running runs again."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def add(self, index: int, kind: str, data: bytes) -> None:
        encoded = kind.encode()
        os.write(self._fd, SPOOL_ENTRY.pack(index, len(encoded), len(data)) + encoded + data)

    def keep(self, results: list[tuple[int, str, bytes]]) -> None:
        """Hold only `results` (the ones not sent yet) from now on."""
        os.ftruncate(self._fd, 0)
        for index, kind, data in results:
            self.add(index, kind, data)


def read_spool(path: Path) -> list[tuple[int, str, bytes]]:
    """The results a worker spooled and had not sent: (index, kind, bytes); a last entry
    cut short (the worker died writing it) is left out."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    found: list[tuple[int, str, bytes]] = []
    offset = 0
    while offset + SPOOL_ENTRY.size <= len(data):
        index, kind_size, size = SPOOL_ENTRY.unpack_from(data, offset)
        start = offset + SPOOL_ENTRY.size
        end = start + kind_size + size
        if end > len(data):
            break
        kind = data[start : start + kind_size].decode()
        found.append((index, kind, data[start + kind_size : end]))
        offset = end
    return found
