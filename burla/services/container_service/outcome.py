"""What a worker sends back for an input: its value pickled, or the exception that stands
for it, in a form the caller can raise.

Three things a function can do would not reach its caller as they are, and are turned
into what does: a return value that does not pickle (a SerializationError naming the
input), sys.exit (a FunctionExitError with its code, instead of a SystemExit that would
end the caller's own script), and an exception whose traceback is too deep to pickle (a
RecursionError's thousand frames: the middle ones are left out, and a note says how
many). An exception that still cannot be pickled travels as text (RemoteError).
"""

from __future__ import annotations

import json
import traceback
from types import TracebackType
from typing import Any

import cloudpickle
from tblib import pickling_support

from burla.core.errors import FunctionExitError, SerializationError
from burla.core.plain import dumps_plain

KEPT_FRAMES = 20
"""A traceback keeps this many frames at each end; the ones between are left out."""


def pack_value(index: int, value: Any) -> tuple[str, bytes]:
    """("ok", the pickled value), or the SerializationError that stands for it."""
    if (plain := dumps_plain(value)) is not None:
        return "ok", plain
    try:
        return "ok", cloudpickle.dumps(value)
    except Exception as error:
        problem = SerializationError(
            f"the return value of input {index} ({type(value).__qualname__}) could not be "
            f"pickled: {type(error).__name__}: {error}. Return plain data (numbers, text, "
            "lists, dicts, arrays) instead of objects that hold locks, open files, sockets "
            "or connections"
        )
        return pack_exception(index, problem)


def pack_exception(index: int, error: BaseException) -> tuple[str, bytes]:
    """("raised", the pickled exception), or ("raised_text", JSON of its type, message
    and traceback) when it cannot be pickled and rebuilt."""
    if isinstance(error, SystemExit):
        exited = FunctionExitError(
            f"input {index} called sys.exit({error.code!r}); the job stops there, and so "
            "does the function's own Python, not yours",
            error.code,
            index,
        )
        exited.__traceback__ = error.__traceback__
        error = exited
    _trim(error, set())
    pickling_support.install(error)
    try:
        data = cloudpickle.dumps(error)
        cloudpickle.loads(data)  # some exceptions pickle but cannot be rebuilt
        return "raised", data
    except Exception:
        text = {
            "type": f"{type(error).__module__}.{type(error).__qualname__}",
            "message": str(error),
            "traceback": "".join(traceback.format_exception(error)),
        }
        return "raised_text", json.dumps(text).encode()


def _trim(error: BaseException, seen: set[int]) -> None:
    """Leave out the middle of a too-deep traceback, of the error and those it chains."""
    if id(error) in seen:
        return
    seen.add(id(error))
    frames = _frames(error.__traceback__)
    if len(frames) > 2 * KEPT_FRAMES:
        left_out = len(frames) - 2 * KEPT_FRAMES
        frames[KEPT_FRAMES - 1].tb_next = frames[-KEPT_FRAMES]
        error.add_note(f"[burla left out {left_out} frames from the middle of this traceback]")
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            _trim(linked, seen)


def _frames(tb: TracebackType | None) -> list[TracebackType]:
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return frames
