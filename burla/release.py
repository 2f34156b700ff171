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
import os
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
    for relative in _relative_files():
        digest.update(relative.encode() + b"\0")
        with open(os.path.join(PACKAGE_DIR, relative), "rb") as file:
            digest.update(hashlib.sha256(file.read()).digest())
    return digest.hexdigest()[:BUILD_ID_LENGTH]


@functools.cache
def install_stamp() -> str:
    """A mark of the package's files as installed here: their paths, sizes and change
    times. Processes of one machine that load the same files agree; a burla installed or
    changed since gives another mark. Cheap (a look at each file, about a millisecond),
    where build_id reads every file: a client compares it with its local cluster's."""
    digest = hashlib.sha256(str(PACKAGE_DIR).encode())
    for relative in _relative_files():
        stat = os.stat(os.path.join(PACKAGE_DIR, relative))
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:BUILD_ID_LENGTH]


def package_files() -> list[Path]:
    """The package's files, relative to its directory, sorted: what a wheel of it holds."""
    return [Path(relative) for relative in _relative_files()]


def _relative_files() -> list[str]:
    """The package's files as relative POSIX paths, sorted as paths (part by part).

    os.scandir rather than pathlib: every node and main_service hashes the package as it
    starts, and this takes a third of the time."""
    found: list[str] = []
    _collect(str(PACKAGE_DIR), "", found)
    return sorted(found, key=lambda relative: relative.split("/"))


def _collect(directory: str, prefix: str, found: list[str]) -> None:
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name == "__pycache__" or entry.name.startswith("."):
                continue
            if entry.is_dir():
                _collect(entry.path, f"{prefix}{entry.name}/", found)
            elif entry.is_file() and not entry.name.endswith((".pyc", ".pyo")):
                found.append(prefix + entry.name)


def build_mismatch(other_build: str) -> str:
    """Why a process running build `other_build` may not join this one's cluster."""
    theirs = f"build {other_build}" if other_build else "a burla too old to name its build"
    return (
        f"a node runs {theirs}, but main_service runs {DISTRIBUTION} {version()} build "
        f"{build_id()}: every node must run the burla main_service runs (a deployed "
        "cluster's nodes install the wheel `burla deploy` put in its bucket; run "
        "`burla deploy` again after upgrading burla)"
    )
