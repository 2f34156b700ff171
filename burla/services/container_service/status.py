"""The status file: which input a worker is running, and since when.

The worker writes it before and after every input; its node reads it when the worker
dies (to name the input that killed it) or runs long (to enforce the job's timeout).
Both the status and the spool of results are files the worker maps into its memory:
what it stores there is in the kernel's copy of the file at once, which outlives the
process, without a system call per input. Standard library only: the node reads them
without loading anything the worker needs.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

STATUS = struct.Struct("<qd")
"""The status file: index of the input running (-1: none) and when it started (epoch s)."""


class StatusFile:
    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, STATUS.size)
            self._map = mmap.mmap(fd, STATUS.size)
        finally:
            os.close(fd)
        self.set(-1)

    def set(self, index: int) -> None:
        STATUS.pack_into(self._map, 0, index, time.time())


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
SPOOL_USED = struct.Struct("<Q")
"""Starts the spool: how many bytes of entries follow. An entry counts once this says so,
so one the worker died writing is never read."""
SPOOL_FIRST_SIZE = 64 << 10
SPOOL_KEPT_SIZE = 1 << 20
"""A spool grown past this for big results shrinks back once they went out."""


def spool_path(status_path: Path) -> Path:
    """Where a worker keeps the results it has not sent yet, beside its status file."""
    return status_path.with_name(status_path.name + ".results")


class ResultSpool:
    """The finished results a worker has not sent to its node yet, written as each input
    ends: the kernel keeps what the worker stored in the mapped file even if the process
    dies the next moment, so a node whose worker died reads them here, and only the input
    that was running runs again."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._map = self._mapped(SPOOL_FIRST_SIZE)
        self._used = 0

    def _mapped(self, size: int) -> mmap.mmap:
        os.ftruncate(self._fd, size)
        return mmap.mmap(self._fd, size)

    def add(self, index: int, kind: str, data: bytes) -> None:
        encoded = kind.encode()
        start = SPOOL_USED.size + self._used
        end = start + SPOOL_ENTRY.size + len(encoded) + len(data)
        if end > len(self._map):
            self._resize(max(end, 2 * len(self._map)))
        SPOOL_ENTRY.pack_into(self._map, start, index, len(encoded), len(data))
        body = start + SPOOL_ENTRY.size
        self._map[body : body + len(encoded)] = encoded
        self._map[body + len(encoded) : end] = data
        self._used = end - SPOOL_USED.size
        SPOOL_USED.pack_into(self._map, 0, self._used)

    def keep(self, results: list[tuple[int, str, bytes]]) -> None:
        """Hold only `results` (the ones not sent yet) from now on."""
        self._used = 0
        SPOOL_USED.pack_into(self._map, 0, 0)
        if len(self._map) > SPOOL_KEPT_SIZE:
            self._resize(SPOOL_FIRST_SIZE)
        for index, kind, data in results:
            self.add(index, kind, data)

    def _resize(self, size: int) -> None:
        self._map.close()
        self._map = self._mapped(size)


def read_spool(path: Path) -> list[tuple[int, str, bytes]]:
    """The results a worker spooled and had not sent: (index, kind, bytes); an entry cut
    short (by a file that ends early) is left out."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    if len(data) < SPOOL_USED.size:
        return []
    (used,) = SPOOL_USED.unpack_from(data)
    data = data[SPOOL_USED.size : SPOOL_USED.size + used]
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
