"""Rebuilds the caller's by-value code where it runs, named after its file, and puts that
file's text into linecache, so tracebacks and pdb there show the caller's source lines.

This module travels by value inside every job's function (see source_pickler): a worker,
`burla jobs repro` and a repro.py written by `--to` rebuild the code with it, needing
only the standard library. It must import nothing else.
"""

from __future__ import annotations

import linecache
import types
from typing import Any


def code_with_source(
    filename: str, lines: tuple[str, ...] | None, code_args: tuple[Any, ...]
) -> types.CodeType:
    """The code object of `code_args` (cloudpickle's), named `filename`, its file's text
    `lines` put into linecache first."""
    # With no modification time, linecache.checkcache keeps the entry as it keeps a
    # notebook's cells: where no such file exists, and where one does but changes or goes
    # (the user edits the script while its job runs on this machine), tracebacks show the
    # lines of the code that runs. (Comments, unlike a docstring, are not pickled.)
    if lines:
        linecache.cache[filename] = (sum(map(len, lines)), None, list(lines), filename)
    code: types.CodeType = types.CodeType(*code_args)
    return code.replace(co_filename=filename)
