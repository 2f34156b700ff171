"""Pickling the function and inputs, with the caller's own code shipped by value (the
function's with its files' names and text, see source_pickler)."""

from __future__ import annotations

import functools
import io
import site
import sys
import sysconfig
import threading
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import cloudpickle

from burla.client.source_pickler import dumps_with_source
from burla.core.errors import SerializationError
from burla.core.plain import dumps_plain

_INSTALLED = tuple(
    str(Path(p).resolve())
    for p in {
        *site.getsitepackages(),
        site.getusersitepackages(),
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["platstdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        sys.prefix,
        sys.base_prefix,
    }
)
_BURLA = str(Path(__file__).resolve().parents[1])
_RUNTIME = str(Path(cloudpickle.__file__).resolve().parents[1])
"""Where burla's own dependencies are: inside a worker, a folder of linked packages that
is no site-packages, whose modules must never travel by value."""


def is_own_code(module: ModuleType) -> bool:
    """A module of the caller's (a script, a module beside it, a notebook), not installed."""
    file = getattr(module, "__file__", None)
    return bool(file) and _is_own_file(file)


@functools.lru_cache(maxsize=4096)
def _is_own_file(file: str) -> bool:
    """Whether a module's file lies outside every installed place, links resolved; kept,
    as every call of remote_parallel_map asks of the same few modules."""
    path = str(Path(file).resolve())
    return not path.startswith((*_INSTALLED, _BURLA, _RUNTIME))


_seen: dict[str, object] = {}
"""Top-level modules already looked at, by name: the module object seen then."""
_modules_seen: tuple[int, str] | None = None
"""How many modules sys.modules held at the last look, and the last one imported."""
_seen_lock = threading.Lock()
"""Jobs submitted from several threads at once: one that finds a module seen must not
pickle before the thread that saw it has registered it."""


def ship_own_code_by_value() -> None:
    """Workers may run another environment, started by another process: send the caller's
    own modules with the function rather than by name."""
    global _modules_seen
    with _seen_lock:
        modules_now = (len(sys.modules), next(reversed(sys.modules)))
        if modules_now == _modules_seen:  # no module was imported since the last look
            return
        _modules_seen = modules_now
        for name, module in list(sys.modules.items()):
            if module is None or "." in name or name == "__main__" or _seen.get(name) is module:
                continue
            if is_own_code(module):
                cloudpickle.register_pickle_by_value(module)
            _seen[name] = module


def dumps_function(function: Any) -> bytes:
    if not callable(function):
        raise SerializationError(
            f"remote_parallel_map needs a function, not {type(function).__name__}"
        )
    ship_own_code_by_value()
    try:
        return dumps_with_source(function)
    except Exception as error:
        raise SerializationError(
            f"the function {getattr(function, '__qualname__', function)!r} cannot be pickled: "
            f"{type(error).__name__}: {error}. It must not capture open files, locks, "
            "sockets or clients; create those inside the function instead."
        ) from error


def dumps_input(index: int, value: Any, unpack_tuples: bool) -> bytes:
    args = value if unpack_tuples and type(value) is tuple else (value,)
    if (plain := dumps_plain(args)) is not None:
        return plain
    buffer = io.BytesIO()
    dump_input(index, value, unpack_tuples, buffer)
    return buffer.getvalue()


def dump_input(index: int, value: Any, unpack_tuples: bool, file: IO[bytes]) -> None:
    """Pickle an input's arguments into `file`. Written straight to a file, a big bytes
    value is copied once, not first into a pickle in memory."""
    args = value if unpack_tuples and type(value) is tuple else (value,)
    try:
        cloudpickle.dump(args, file)
    except OSError:
        raise  # writing to `file` failed (a full disk), not pickling
    except Exception as error:
        raise SerializationError(
            f"input {index} ({type(value).__name__}) cannot be pickled: "
            f"{type(error).__name__}: {error}. Pass plain data (numbers, strings, lists, "
            "arrays, paths) and open files or connections inside the function."
        ) from error


def known_size(value: Any, unpack_tuples: bool) -> int:
    """Bytes an input surely pickles to at least, known without pickling it: the sizes of
    the bytes, strings and arrays among its arguments."""
    args = value if unpack_tuples and type(value) is tuple else (value,)
    total = 0
    for arg in args:
        if isinstance(arg, bytes | bytearray | str):
            total += len(arg)
        elif isinstance(arg, memoryview):
            total += arg.nbytes
        elif isinstance(nbytes := getattr(arg, "nbytes", None), int):  # numpy, arrow, ...
            total += nbytes
    return total
