"""Processes of the local backend (nodes, workers): started in a session of their own with
their output in a log file, signalled as a group, waited for by polling."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import anyio

_FIRST_POLL_S = 0.002
_LAST_POLL_S = 0.05


def spawn(
    argv: Sequence[str], directory: Path, log: Path, environment: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start `argv` in `directory` and a new session, with no input and its stdout and stderr
    appended to `log`. Raises OSError if it cannot start."""
    with open(log, "ab") as output:
        return subprocess.Popen(
            argv,
            cwd=directory,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def signal_group(pid: int, signum: signal.Signals) -> None:
    """Signal the process group `pid` leads, or `pid` alone if it left that group; nothing
    if it is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


async def wait_while(running: Callable[[], bool], timeout_s: float) -> None:
    """Return once `running()` is false, or after `timeout_s`."""
    delay = _FIRST_POLL_S
    with anyio.move_on_after(timeout_s):
        # Polled: another process's exit is nothing anyio can wait on without a pidfd.
        while running():
            await anyio.sleep(delay)
            delay = min(2 * delay, _LAST_POLL_S)
