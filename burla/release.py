"""Which burla this is: its distribution's name and version, and the build id of its code.

burla's distribution on the package index is `burla-cluster` (the name `burla` belongs to
another project there); the package it installs is `burla`. Two processes of a cluster
work together only when they run the same code, which the build id tells: a hash of
every file of the `burla` package, the same for a checkout, an editable install and the
wheel `burla deploy` builds from it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

DISTRIBUTION = "burla-cluster"
PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_ID_LENGTH = 12


def version() -> str:
    """The installed distribution's version, or "unknown" where burla runs without its
    metadata (a worker environment links the package alone)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def build_id() -> str:
    """A hash of the package's files and their paths: equal exactly when the code is."""
    digest = hashlib.sha256()
    for relative in package_files():
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256((PACKAGE_DIR / relative).read_bytes()).digest())
    return digest.hexdigest()[:BUILD_ID_LENGTH]


def package_files() -> list[Path]:
    """The package's files, relative to its directory, sorted: what a wheel of it holds."""
    return sorted(_files_under(PACKAGE_DIR))


def _files_under(directory: Path) -> Iterator[Path]:
    for entry in directory.iterdir():
        if entry.name == "__pycache__" or entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _files_under(entry)
        elif entry.is_file() and entry.suffix not in (".pyc", ".pyo"):
            yield entry.relative_to(PACKAGE_DIR)


def build_mismatch(other_build: str) -> str:
    """Why a process running build `other_build` may not join this one's cluster."""
    theirs = f"build {other_build}" if other_build else "a burla too old to name its build"
    return (
        f"a node runs {theirs}, but main_service runs {DISTRIBUTION} {version()} build "
        f"{build_id()}: every node must run the burla main_service runs (a deployed "
        "cluster's nodes install the wheel `burla deploy` put in its bucket; run "
        "`burla deploy` again after upgrading burla)"
    )
