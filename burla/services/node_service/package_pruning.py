"""Keeping a node's package cache within a size: the least recently used packages go.

A job's packages are unpacked once per machine and linked into an environment folder
(node_service.packages); both stay for the next job that needs them. Left alone they only
grow, so after each job, and when the cluster's admin asks (`burla local prune`, `burla
cluster prune`), unpacked packages go, least recently used first, until the rest fit in
the limit. Never one an environment in use links to; an environment that linked to one
that went goes too, and is built again (from the blob store) by the next job that needs
it. A package's folder is touched each time a job uses it: its mtime is its last use.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pruned:
    removed: int
    """Unpacked packages removed."""
    freed_bytes: int
    kept_bytes: int


def mark_used(folders: Collection[Path]) -> None:
    """Note that a job uses these folders now (their mtime is their last use)."""
    for folder in folders:
        with contextlib.suppress(FileNotFoundError):
            os.utime(folder)


def prune(root: Path, limit_bytes: int, in_use: Collection[Path] = ()) -> tuple[Pruned, set[Path]]:
    """Remove least recently used unpacked packages under `root` until they take at most
    `limit_bytes`, keeping those the environment folders `in_use` link to; then the
    environment folders left with broken links. What was pruned, and those folders."""
    unpacked = sorted(_unpacked(root), key=_last_use)
    needed = {package for folder in in_use for package in _linked_packages(root, folder)}
    sizes = {package: _size(package) for package in unpacked}
    total = sum(sizes.values())
    removed = freed = 0
    for package in unpacked:
        if total <= limit_bytes:
            break
        if package in needed:
            continue
        shutil.rmtree(package, ignore_errors=True)
        total -= sizes[package]
        freed += sizes[package]
        removed += 1
    broken = {folder for folder in _environments(root) if folder not in in_use and _broken(folder)}
    for folder in broken:
        shutil.rmtree(folder, ignore_errors=True)
    return Pruned(removed, freed, total), broken


def _unpacked(root: Path) -> Iterator[Path]:
    """unpacked/<python>/<platform>/<package>/ folders (see node_service.packages)."""
    yield from (path for path in (root / "unpacked").glob("*/*/*") if path.is_dir())


def _environments(root: Path) -> Iterator[Path]:
    folder = root / "envs"
    if folder.is_dir():
        yield from (path for path in folder.iterdir() if path.is_dir())


def _linked_packages(root: Path, folder: Path) -> set[Path]:
    """The unpacked packages an environment folder links into."""
    unpacked = (root / "unpacked").resolve()
    found: set[Path] = set()
    for link in _links(folder):
        target = link.resolve()
        if target.is_relative_to(unpacked):
            parts = target.relative_to(unpacked).parts[:3]
            found.add(root / "unpacked" / Path(*parts))
    return found


def _broken(folder: Path) -> bool:
    return any(not link.exists() for link in _links(folder))


def _links(folder: Path) -> Iterator[Path]:
    for directory, subdirectories, files in os.walk(folder):
        for name in (*subdirectories, *files):
            path = Path(directory, name)
            if path.is_symlink():
                yield path


def _last_use(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(directory, name)).st_size
    return total
