"""This machine's cluster in a directory of a test's own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from burla.client import local
from burla.client.map import Session


@contextlib.contextmanager
def cluster_in(root: Path) -> Iterator[local.ClusterInfo]:
    """The cluster of `root`, started; stopped at the end, with the sessions that talked
    to it closed."""
    try:
        yield local.start(root)
    finally:
        Session.close_all()
        local.stop(root)
