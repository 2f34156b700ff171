"""Waiting, in an async test, for something a process or daemon does on its own time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout_s: float = 10) -> None:
    """Return once `check()` is true; fail the test after `timeout_s`."""
    with anyio.fail_after(timeout_s):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await anyio.sleep(0.02)
