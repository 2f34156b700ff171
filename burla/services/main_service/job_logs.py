"""A job's printed lines and failures: numbered, kept in memory and stored in batches.

Each line gets the next number of its job's log. The first HEAD_LINES are kept, in
memory and in the Store (documents of up to BATCH_LINES lines, each named by its first
line's number); past them only the last TAIL_LINES are (one document, rewritten), and a
reader is told how many were dropped between. A job's log stays in the Store as long as
its results, so `burla jobs logs` and the dashboard read a finished job's lines after a
restart, from any main_service. Lines reach the Store within FLUSH_EVERY_S of being
printed, and all of them before the job's record says it ended.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import Any

import anyio

from burla.core.protocols import Store

HEAD_LINES = 20_000
TAIL_LINES = 2_000
BATCH_LINES = 500
BATCH_CHARS = 256 * 1024
"""A batch document stays far under the Store's document limit (Firestore: 1 MiB)."""
MAX_LINE_CHARS = 16 * 1024
FLUSH_EVERY_S = 1.0
DROPPED = "dropped"
"""The stream of the line a reader gets where lines were not kept."""
MEMORY_STREAM = "memory"
"""The stream of the line that says an input ran out of memory and runs again with more."""

LogLine = tuple[int, str, str]
"""The input that printed it, its stream (stdout, stderr, error, memory) and its text."""


def logs_prefix(job_id: str) -> str:
    return f"logs/{job_id}/"


def _head_key(job_id: str, first: int) -> str:
    return f"{logs_prefix(job_id)}h{first:09d}"


def _tail_key(job_id: str) -> str:
    return f"{logs_prefix(job_id)}t"  # sorts after every head document


class JobLog:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.count = 0
        """Lines so far; the next line's number."""
        self.memory_from = 0
        """Lines before this one are only in the Store (written by an earlier main_service)."""
        self._head: list[LogLine] = []
        self._tail: collections.deque[LogLine] = collections.deque(maxlen=TAIL_LINES)
        self._saved = 0
        self._tail_saved = 0
        self._lock = anyio.Lock()

    @classmethod
    async def resume(cls, store: Store, job_id: str) -> JobLog:
        """The log of a job taken over: it goes on after the lines already stored."""
        log = cls(job_id)
        after = ""
        while docs := await store.list(logs_prefix(job_id), after=after):
            after = docs[-1].key
            for doc in docs:
                if doc.key == _tail_key(job_id):
                    log._tail.extend(_lines(doc.data))
                    log.count = max(log.count, int(doc.data["total"]))
                else:
                    end = int(doc.data["first"]) + len(doc.data["lines"])
                    log.count = max(log.count, end)
        log.memory_from = log._saved = log._tail_saved = log.count
        if log._tail:  # kept in memory too: the tail document is rewritten whole
            log.memory_from = log.count - len(log._tail)
        return log

    def add(self, index: int, stream: str, text: str) -> None:
        if len(text) > MAX_LINE_CHARS:
            cut = len(text) - MAX_LINE_CHARS
            text = f"{text[:MAX_LINE_CHARS]}... ({cut} more characters not kept)\n"
        line = (index, stream, text)
        if self.count < HEAD_LINES:
            self._head.append(line)
        else:
            self._tail.append(line)
        self.count += 1

    @property
    def unsaved(self) -> bool:
        return self._saved < min(self.count, HEAD_LINES) or self._tail_saved < self.count

    def page(self, after: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Lines from number `after` on that this main_service holds (at most `limit`),
        and the number to read from next."""
        numbered = [
            *enumerate(self._head, start=min(self.memory_from, HEAD_LINES)),
            *enumerate(self._tail, start=self.count - len(self._tail)),
        ]
        return _page(numbered, after, limit)

    async def flush(self, store: Store) -> None:
        """Store the lines not stored yet."""
        async with self._lock:
            end = min(self.count, HEAD_LINES)
            while self._saved < end:
                start = self._saved - min(self.memory_from, HEAD_LINES)
                batch = list(_batch(self._head[start : start + BATCH_LINES]))
                doc = {"first": self._saved, "lines": [list(line) for line in batch]}
                await store.put_many({_head_key(self.job_id, self._saved): doc}, create_only=True)
                self._saved += len(batch)
            if self.count > HEAD_LINES and self._tail_saved < self.count:
                count = self.count
                doc = {"total": count, "lines": [list(line) for line in self._tail]}
                await store.put(_tail_key(self.job_id), doc)
                self._tail_saved = count


async def stored_page(
    store: Store, job_id: str, after: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Lines from number `after` on, as the Store holds them (at most `limit`), and the
    number to read from next."""
    start = f"{logs_prefix(job_id)}h{after - BATCH_LINES:09d}" if after >= BATCH_LINES else ""
    numbered: list[tuple[int, LogLine]] = []
    while docs := await store.list(logs_prefix(job_id), after=start, limit=100):
        start = docs[-1].key
        for doc in docs:
            lines = _lines(doc.data)
            if doc.key == _tail_key(job_id):
                first = int(doc.data["total"]) - len(lines)
            else:
                first = int(doc.data["first"])
            numbered += [(n, line) for n, line in enumerate(lines, start=first) if n >= after]
        if len(numbered) >= limit:
            break
    return _page(numbered, after, limit)


def _page(
    numbered: Iterable[tuple[int, LogLine]], after: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Up to `limit` lines numbered `after` or later, with a line that says so where some
    were dropped, and the number to read from next."""
    lines: list[dict[str, Any]] = []
    expected = after
    for number, (index, stream, text) in numbered:
        if number < after:
            continue
        if len(lines) >= limit:
            return lines, expected
        if number > expected and expected >= HEAD_LINES:
            dropped = number - expected
            text_dropped = (
                f"{dropped} lines were not kept: a job keeps its first {HEAD_LINES} "
                f"and last {TAIL_LINES} lines\n"
            )
            lines.append({"input": None, "stream": DROPPED, "text": text_dropped})
        lines.append({"input": index, "stream": stream, "text": text})
        expected = number + 1
    return lines, expected


def _batch(lines: list[LogLine]) -> Iterator[LogLine]:
    """The first lines of `lines` that fit in one document (at least one)."""
    chars = 0
    for n, line in enumerate(lines):
        chars += len(line[2]) + 32
        if n and chars > BATCH_CHARS:
            return
        yield line


def _lines(data: dict[str, Any]) -> list[LogLine]:
    return [(int(index), str(stream), str(text)) for index, stream, text in data["lines"]]
