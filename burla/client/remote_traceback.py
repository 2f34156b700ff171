"""Remote tracebacks as the caller sees them: each frame names its file and shows its
line, without column markers that would point at the wrong columns.

An exception comes back with frames that tblib rebuilt from stand-in code raising at the
right line: Python would draw its column markers from the stand-in, under the wrong part
of the caller's line. Each frame is given stand-in code of its own whose instruction has
no place in the source, so the line is shown unmarked.

A job's function keeps the names of its by-value code's files (source_pickler), but code
that reached a worker another way (a function inside an input, or a function pickled by
plain cloudpickle) is named "<dynamic-code>". Each such frame is matched to the caller's
own code by function name and line, and given its file again; Python then shows the
line, as it does for a local error.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import cloudpickle

from burla.core.settings import file_stamp

DYNAMIC = "<dynamic-code>"
_STAND_IN = "try:\n    raise __stand_in__\nfinally:\n    pass\n"
"""Its exception cleanup has instructions with no place in the source."""
_KEPT_GLOBALS = ("__name__", "__file__")
"""What tblib keeps of a remote frame's globals, kept by its stand-in too."""


def with_source_files(error: BaseException) -> BaseException:
    """`error`, its cause and context, as they came back from a worker, with frames that
    name their files and show their lines unmarked."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.__traceback__ is not None:
            current.__traceback__ = _rebuilt(current.__traceback__)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return error


def _rebuilt(traceback: types.TracebackType) -> types.TracebackType:
    """The same traceback, each frame on stand-in code of its file (of the caller's own
    file, for by-value code that can be placed in one)."""
    entries: list[types.TracebackType] = []
    current: types.TracebackType | None = traceback
    while current is not None:
        entries.append(current)
        current = current.tb_next
    rebuilt: types.TracebackType | None = None
    for entry in reversed(entries):
        frame, line = entry.tb_frame, entry.tb_lineno
        name, file = frame.f_code.co_name, frame.f_code.co_filename
        if file == DYNAMIC:
            file = _file_of(name, line) or DYNAMIC
        kept = {key: frame.f_globals[key] for key in _KEPT_GLOBALS if key in frame.f_globals}
        stand_in, lasti = _stand_in(file, name, kept)
        rebuilt = types.TracebackType(rebuilt, stand_in, lasti, line)
    assert rebuilt is not None
    return rebuilt


class _StandIn(Exception):
    pass


def _stand_in(file: str, name: str, globals_: dict[str, object]) -> tuple[types.FrameType, int]:
    """A frame whose code is named `name` and comes from `file`, and the offset of one of
    its instructions that has no place in the source. The code is a stand-in, not the
    code that ran: pointing at no place, the traceback shows the line it names, without
    column markers drawn from the stand-in."""
    code, nowhere = _stand_in_code(file, name)
    try:
        exec(code, {**globals_, "__stand_in__": _StandIn()})
    except _StandIn as raised:
        traceback = raised.__traceback__
    assert traceback is not None
    assert traceback.tb_next is not None
    return traceback.tb_next.tb_frame, nowhere


@functools.lru_cache(maxsize=256)
def _stand_in_code(file: str, name: str) -> tuple[types.CodeType, int]:
    code = compile(_STAND_IN, file, "exec").replace(co_name=name)
    nowhere = next(2 * n for n, place in enumerate(code.co_positions()) if place[0] is None)
    return code, nowhere


def _file_of(name: str, line: int) -> str | None:
    """The one file of the caller's by-value code with a function `name` spanning `line`."""
    found = {
        file
        for file in _by_value_files()
        if (name, line) in _functions_in(file, file_stamp(Path(file)))
    }
    return found.pop() if len(found) == 1 else None


def _by_value_files() -> set[str]:
    registered = cloudpickle.list_registry_pickle_by_value()
    files = set()
    for module_name, module in list(sys.modules.items()):
        top = module_name.partition(".")[0]
        if module_name == "__main__" or top in registered:
            file = getattr(module, "__file__", None)
            if file and file.endswith(".py"):
                files.add(file)
    return files


@functools.lru_cache(maxsize=256)
def _functions_in(file: str, stamp: object) -> frozenset[tuple[str, int]]:
    """(function name, line) for every line of every function the file defines, as the
    file is now (`stamp` changes when it is written)."""
    try:
        with open(file, encoding="utf-8") as source:
            module = compile(source.read(), file, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    return frozenset(
        (code.co_name, line) for code in _codes(module) for _, _, line in code.co_lines() if line
    )


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)
