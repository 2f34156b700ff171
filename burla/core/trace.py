"""Marks a job leaves on its way through burla's processes, to see where its time goes.

With BURLA_TRACE_FILE set, every process that reaches a mark appends one line,
`<monotonic ns> <pid> <label>`, to that file in one write (O_APPEND keeps lines of
different processes whole). CLOCK_MONOTONIC is one clock for every process of a machine,
so a client's, main_service's, a node's and its workers' marks line up on one time line
(`python -m benchmarks.hops` reads them). Unset, a mark costs a test of one global.
"""

from __future__ import annotations

import os
import time

TRACE_FILE_ENV = "BURLA_TRACE_FILE"


def _opened(path: str | None) -> int | None:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if path else None


_fd = _opened(os.environ.get(TRACE_FILE_ENV))


def start(path: str) -> None:
    """Trace this process, and the processes it starts from now on, to `path`."""
    global _fd
    stop()
    os.environ[TRACE_FILE_ENV] = path
    _fd = _opened(path)


def stop() -> None:
    """Trace no more, here or in processes started from now on."""
    global _fd
    os.environ.pop(TRACE_FILE_ENV, None)
    if _fd is not None:
        os.close(_fd)
        _fd = None


def mark(label: str) -> None:
    """Note that this process reached `label` now."""
    if _fd is not None:
        os.write(_fd, f"{time.monotonic_ns()} {os.getpid()} {label}\n".encode())
