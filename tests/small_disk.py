"""A small disk for tests of a full one: a tmpfs of a given size, mounted over a directory
for the test and unmounted after (the tests run as root, as CI does)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def small_disk(directory: Path, size: str) -> Iterator[Path]:
    """`directory` (made if need be) on a tmpfs of `size` (e.g. "1m") until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield directory
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], check=True)
