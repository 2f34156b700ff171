"""HostRuntime: what the runtimes whose containers run on this machine (local processes,
Docker) share: a directory per container, CPU pinning, and the starts in progress."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from burla.backends.runtime_rules import real_cpus


class HostRuntime:
    """The base of a ContainerRuntime whose containers run on this machine, under `root`."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._available = sorted(os.sched_getaffinity(0))
        """The machine CPUs this process may use: every virtual cpuset maps onto them."""
        self._starting: dict[str, int] = {}
        """Name -> port of each container being started: both are taken until it is up."""

    def directory(self, name: str) -> Path:
        """The host directory of the container `name`, its working directory."""
        return self._root / "containers" / name

    def real_cpus(self, cpuset: frozenset[int]) -> set[int]:
        """The machine CPUs a container with this (virtual) cpuset runs on."""
        return real_cpus(cpuset, self._available)

    @contextmanager
    def _holding(self, name: str, port: int) -> Iterator[None]:
        """Take `name` and `port` while the container starts; the caller checked both."""
        self._starting[name] = port
        try:
            yield
        finally:
            del self._starting[name]
