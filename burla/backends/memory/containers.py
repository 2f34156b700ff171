"""MemoryContainerRuntime: the containers of one node, kept as records in memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from burla.backends.runtime_rules import (
    check_cpuset,
    check_free,
    check_memory_limit,
    check_start,
    not_found,
)
from burla.core.models import ContainerSpec
from burla.core.protocols import ContainerInfo, Mount


class MemoryContainerRuntime:
    """The ContainerRuntime protocol in memory: it checks a start as a real runtime would,
    and runs nothing.

    `crash` marks a container exited, to simulate a worker that died.
    """

    def __init__(self) -> None:
        self._containers: dict[str, ContainerInfo] = {}

    async def start(
        self,
        spec: ContainerSpec,
        *,
        name: str,
        port: int,
        cpuset: frozenset[int],
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
    ) -> ContainerInfo:
        check_start(spec, name, port, cpuset, env or {})
        running = [(other.name, other.port) for other in self._containers.values() if other.running]
        check_free(name, port, self._containers, running)
        info = ContainerInfo(name=name, image=spec.image, port=port, cpuset=frozenset(cpuset))
        self._containers[name] = info
        return info

    async def stop(self, name: str) -> bool:
        return self._containers.pop(name, None) is not None

    async def set_cpuset(self, name: str, cpuset: frozenset[int]) -> ContainerInfo:
        info = self._find(name)
        check_cpuset(name, cpuset)
        info = replace(info, cpuset=frozenset(cpuset))
        self._containers[name] = info
        return info

    async def set_memory(self, name: str, limit: int | None) -> ContainerInfo:
        info = self._find(name)
        check_memory_limit(name, limit)
        info = replace(info, memory_limit=limit)
        self._containers[name] = info
        return info

    async def list(self) -> list[ContainerInfo]:
        return [self._containers[name] for name in sorted(self._containers)]

    async def free_image(self, image: str) -> None:
        """Nothing to free: this runtime fetches no image."""

    def crash(self, name: str, exit_code: int, *, out_of_memory: bool = False) -> ContainerInfo:
        """Mark a container exited with `exit_code`, as if its process died (or was stopped
        for going over its memory limit)."""
        info = replace(
            self._find(name), running=False, exit_code=exit_code, out_of_memory=out_of_memory
        )
        self._containers[name] = info
        return info

    def _find(self, name: str) -> ContainerInfo:
        info = self._containers.get(name)
        if info is None:
            raise not_found(name)
        return info
