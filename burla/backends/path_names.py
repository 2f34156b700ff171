"""The rule for names that backends turn into file and directory names (containers, nodes)."""

from __future__ import annotations

import re

from burla.core.errors import InvalidRequestError

_PATH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""One path component, never '.' or '..', and the same on every file system."""


def is_path_name(name: str) -> bool:
    return _PATH_NAME.fullmatch(name) is not None


def check_path_name(what: str, name: str) -> None:
    """InvalidRequestError unless `name` (a `what`, e.g. "node id") may name a directory."""
    if not is_path_name(name):
        raise InvalidRequestError(
            f"{what} {name!r} is not allowed: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
