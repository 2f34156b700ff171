"""MemoryContainerRuntime: the containers of one node, kept as records in memory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from burla.core.errors import ConflictError, InvalidRequestError, NotFoundError
from burla.core.models import ContainerSpec
from burla.core.protocols import ContainerInfo, Mount


def _check_cpuset(name: str, cpuset: frozenset[int]) -> None:
    if not cpuset:
        raise InvalidRequestError(
            f"container {name!r} needs at least one CPU in its cpuset; got an empty set"
        )
    negative = sorted(cpu for cpu in cpuset if cpu < 0)
    if negative:
        raise InvalidRequestError(
            f"container {name!r}: CPU numbers start at 0, so {negative} cannot be pinned"
        )


def _checked_limit(name: str, limit: int | None) -> int | None:
    if limit is not None and limit <= 0:
        raise InvalidRequestError(
            f"container {name!r}: a memory limit must be a positive number of bytes, not {limit}"
        )
    return limit


class MemoryContainerRuntime:
    """The ContainerRuntime protocol in memory: it checks names, ports and cpusets as a
    real runtime would, and runs nothing.

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
        if not 0 < port < 65536:
            raise InvalidRequestError(f"container {name!r}: port {port} is not in 1..65535")
        _check_cpuset(name, cpuset)
        if name in self._containers:
            raise ConflictError(
                f"a container named {name!r} already exists; stop it first or choose another name"
            )
        for other in self._containers.values():
            if other.running and other.port == port:
                raise ConflictError(
                    f"container {name!r} cannot listen on port {port}: running container "
                    f"{other.name!r} already does; choose another port or stop {other.name!r}"
                )
        info = ContainerInfo(name=name, image=spec.image, port=port, cpuset=frozenset(cpuset))
        self._containers[name] = info
        return info

    async def stop(self, name: str) -> bool:
        return self._containers.pop(name, None) is not None

    async def set_cpuset(self, name: str, cpuset: frozenset[int]) -> ContainerInfo:
        info = self._find(name)
        _check_cpuset(name, cpuset)
        info = replace(info, cpuset=frozenset(cpuset))
        self._containers[name] = info
        return info

    async def set_memory(self, name: str, limit: int | None) -> ContainerInfo:
        info = replace(self._find(name), memory_limit=_checked_limit(name, limit))
        self._containers[name] = info
        return info

    async def list(self) -> list[ContainerInfo]:
        return [self._containers[name] for name in sorted(self._containers)]

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
            raise NotFoundError(
                f"there is no container {name!r} on this node; start it first or check the name"
            )
        return info
