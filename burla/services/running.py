"""Running a service's process: its event loop, its stop signals, its errors and files.

Kept apart from the web stack (burla.services.serving) so that a service with no HTTP
server, node_service, starts without loading FastAPI and uvicorn.
"""

from __future__ import annotations

import importlib.util
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup


def run(main: Callable[..., Awaitable[None]], *args: Any) -> None:
    """Run a service's main coroutine, on uvloop where it is installed (a faster loop)."""
    uvloop = importlib.util.find_spec("uvloop") is not None
    anyio.run(main, *args, backend_options={"use_uvloop": uvloop})


async def cancel_on_signal(tasks: TaskGroup) -> None:
    """For a service with no HTTP server: stop on SIGTERM or SIGINT."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            tasks.cancel_scope.cancel()
            return


def leaf_errors(error: BaseException) -> list[BaseException]:
    """The errors inside a (nested) exception group, or the error itself."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaf_errors(inner)]
    return [error]


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.chmod(0o600)
    temporary.replace(path)
