"""Pickling a job's function so that its by-value code keeps its file's name and text.

cloudpickle names every code object it sends by value "<dynamic-code>" (its payload is
then the same wherever the function was defined), so a traceback or pdb on a worker, or
in `burla jobs repro`, shows neither the file nor its lines. SourcePickler sends each such
code object with its own file name (`/home/u/analysis.py`, a notebook cell's name) and,
once per file, the file's text (as it is on disk, or as linecache has a notebook cell's);
source_loader puts the text into linecache where the function is unpickled. Code imported
by reference (from installed packages) is not sent at all: its files are where it runs.

A file's text is left out when it is over FILE_CHARS, when the function's files together
would pass TOTAL_CHARS, or when it no longer matches the code (the file was edited since
it was imported): the frame still names its file, without lines.
"""

from __future__ import annotations

import io
import linecache
import os
import re
import tokenize
import types
from typing import IO, Any

import cloudpickle

from burla.client import source_loader

FILE_CHARS = 128 << 10
"""Longest file whose text is sent, in characters (some 3,000 lines)."""
TOTAL_CHARS = 256 << 10
"""Most text sent with one function: it is kept with the job, and each worker gets a
copy."""

cloudpickle.register_pickle_by_value(source_loader)
_reduce_code = cloudpickle.Pickler.dispatch_table[types.CodeType]
_LOADER_FILE = source_loader.code_with_source.__code__.co_filename


class SourcePickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle's Pickler, sending code objects with their file's name and text."""

    def __init__(self, file: IO[bytes], protocol: int | None = None) -> None:
        super().__init__(file, protocol=protocol)
        self._texts: dict[str, tuple[str, ...] | None] = {}
        self._chars = 0

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is not types.CodeType:
            return super().reducer_override(obj)
        _, code_args = _reduce_code(obj)
        if obj.co_filename == _LOADER_FILE:  # the loader itself: rebuilt the plain way
            return types.CodeType, code_args
        return source_loader.code_with_source, (obj.co_filename, self._text(obj), code_args)

    def _text(self, code: types.CodeType) -> tuple[str, ...] | None:
        """The text of `code`'s file, the first time the file comes up; None if there is
        none to send (and afterwards, the same answer)."""
        filename = code.co_filename
        if filename not in self._texts:
            lines = source_lines(code)
            size = sum(map(len, lines or ()))
            if lines is not None and self._chars + size <= TOTAL_CHARS:
                self._chars += size
            else:
                lines = None
            self._texts[filename] = lines
        return self._texts[filename]


def source_lines(code: types.CodeType) -> tuple[str, ...] | None:
    """The lines of the file `code` comes from, if they are at most FILE_CHARS and `code`
    fits them: the file as it is on disk now, or, for code from no file here (a notebook's
    cells), the text linecache has under its name."""
    filename = code.co_filename
    lines = _read(filename) if os.path.isfile(filename) else linecache.getlines(filename)
    if not lines or sum(map(len, lines)) > FILE_CHARS or not fits(code, lines):
        return None
    return tuple(lines)


_files_read: dict[str, tuple[tuple[int, int, int], list[str]]] = {}
"""The lines last read of each file, with the file's inode, size and time then: the same
function is pickled call after call, its file unchanged."""


def _read(filename: str) -> list[str] | None:
    """The file's lines, read as Python reads source (its coding line, or UTF-8); not
    from linecache, which may hold the text of a job's function that was unpickled here
    rather than the file's."""
    try:
        stat = os.stat(filename)
        if stat.st_size > 4 * FILE_CHARS:  # at most 4 bytes a character
            return None
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if (kept := _files_read.get(filename)) is not None and kept[0] == stamp:
            return kept[1]
        with tokenize.open(filename) as source:
            lines = source.readlines()
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    _files_read[filename] = (stamp, lines)
    return lines


def fits(code: types.CodeType, lines: list[str]) -> bool:
    """Whether `code` could have been compiled from `lines`: its lines are in the text,
    and a function or class begins (or its decorators) where its code begins."""
    last = max((line for _, _, line in code.co_lines() if line is not None), default=0)
    if not 0 < code.co_firstlineno <= len(lines) or last > len(lines):
        return False
    if not code.co_name.isidentifier():  # <lambda>, <listcomp>, <module>: no name to find
        return True
    first = lines[code.co_firstlineno - 1].lstrip()
    name = re.escape(code.co_name)
    return re.match(rf"@|(async\s+)?def\s+{name}\b|class\s+{name}\b", first) is not None


def dumps_with_source(obj: Any) -> bytes:
    """`obj` pickled as cloudpickle.dumps does, its by-value code sent with its source."""
    buffer = io.BytesIO()
    SourcePickler(buffer, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
    return buffer.getvalue()
