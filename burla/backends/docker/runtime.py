"""DockerRuntime: a node's containers as Docker containers, one per CPU per container spec.

How the ContainerRuntime protocol maps onto Docker:

- identity: every container carries the labels `burla.node` (the runtime's node id),
  `burla.name`, `burla.port`, `burla.cpuset` and `burla.image`; list() and aclose() go by
  `burla.node`, so a runtime sees only its node's containers, including those a previous
  runtime of the same node started. Docker's own name is `<node id>.<name>`, so nodes
  sharing an engine never collide.
- network: the host's (`network_mode="host"`); the container_service inside listens on
  127.0.0.1:BURLA_PORT, so no traffic leaves the machine and no bridge is needed. Ports
  are the host's too, so a port is refused while any running burla container has it.
- worker code: the image needs only a python3 of the node's minor version. burla and the
  worker's dependencies (cloudpickle, tblib, httpx, rich and what they require, found as
  the local backend finds them) are bind-mounted read-only from the node's own install at
  /opt/burla/worker-packages, which PYTHONPATH names. Nothing is copied or baked in.
- filesystem: the image's, plus the directory `root/"containers"/<name>` of the node,
  emptied at start and mounted read-write at the same path: it is the working directory,
  HOME and BURLA_CONTAINER_ROOT, so files the worker writes there (its status file) are
  where the node reads them. Mounts are read-only or read-write binds; a relative target
  lies inside that directory, as in the local runtime. Mounts given to the runtime itself
  go into every container it starts.
- environment: the image's, then HOME (the container's directory) and
  PYTHONDONTWRITEBYTECODE=1, then the caller's `env`, then PYTHONPATH (the caller's
  entries first), BURLA_PORT, BURLA_CONTAINER_NAME, BURLA_CONTAINER_ROOT and BURLA_CPUSET
  (the cpuset it started with); `env` may not set those four. Processes run as the
  node's user and group, so the node can always clean up what they write.
- cpuset: virtual CPU v runs on real CPU `sorted(available)[v % len(available)]`, as in
  the local runtime (a node may have more CPUs than the machine), `available` being this
  process's affinity; Docker's cpuset cgroup does the pinning, for every process inside.
- exit codes: Docker's, so a container killed by signal N shows 128+N, and one whose
  entrypoint is not in the image starts, then exits with 127 (its logs say why).
- memory: set_memory is Docker's memory limit, swap included (`docker update --memory
  --memory-swap`); the kernel kills a container that goes over, and Docker's OOMKilled is
  its `out_of_memory`.
- stop: `docker stop` (SIGTERM through docker-init, SIGKILL after `stop_grace_s`), then
  the container is removed with its logs.
"""

from __future__ import annotations

import builtins
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from burla.backends.docker.client import connect
from burla.backends.local.envs import worker_sources
from burla.core.errors import BackendError, ConflictError, InvalidRequestError, NotFoundError
from burla.core.protocols import ContainerInfo, Mount

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

    from burla.core.models import ContainerSpec

WORKER_PACKAGES = PurePosixPath("/opt/burla/worker-packages")
"""Where burla and the worker's dependencies appear inside every container (read-only)."""

NODE_LABEL = "burla.node"
NAME_LABEL = "burla.name"
PORT_LABEL = "burla.port"
CPUSET_LABEL = "burla.cpuset"
IMAGE_LABEL = "burla.image"

_RESERVED = ("BURLA_PORT", "BURLA_CONTAINER_NAME", "BURLA_CONTAINER_ROOT", "BURLA_CPUSET")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # no dot: it ends the node id in names
_ALIVE = ("running", "paused", "restarting")
_MACHINE_MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class _Request:
    """A start, checked and resolved, ready to hand to Docker."""

    info: ContainerInfo
    docker_name: str
    directory: Path
    argv: list[str]
    environment: dict[str, str]
    binds: list[tuple[str, str, bool]]  # (source, target, read_only)


class DockerRuntime:
    """The ContainerRuntime protocol on a Docker engine (see module doc)."""

    def __init__(
        self,
        node_id: str,
        root: Path,
        *,
        client: docker.DockerClient | None = None,
        stop_grace_s: float = 2.0,
        mounts: Sequence[Mount] = (),
    ) -> None:
        """`mounts` go into every container this runtime starts, before each start's own
        (a node's shared directories: its workers' status files, the blob store)."""
        if not _NODE_ID.fullmatch(node_id):
            raise InvalidRequestError(
                f"node id {node_id!r} cannot label Docker containers: use letters, digits, "
                "'_' and '-', starting with a letter or digit"
            )
        self.node_id = node_id
        self._root = Path(root).resolve()
        self._client = client or connect()
        self._stop_grace_s = stop_grace_s
        self._mounts = tuple(mounts)
        self._available = sorted(os.sched_getaffinity(0))
        self._packages = worker_sources()
        self._cpusets: dict[str, frozenset[int]] = {}  # set_cpuset's, which labels cannot hold
        self._memory: dict[str, int | None] = {}  # set_memory's, likewise
        self._starting: dict[str, int] = {}

    def directory(self, name: str) -> Path:
        """The host directory of the container `name`, mounted at the same path inside."""
        return self._root / "containers" / name

    def docker_name(self, name: str) -> str:
        """The name Docker knows the container `name` by."""
        return f"{self.node_id}.{name}"

    def real_cpus(self, cpuset: frozenset[int]) -> set[int]:
        """The machine CPUs a container with this (virtual) cpuset runs on."""
        return {self._available[cpu % len(self._available)] for cpu in cpuset}

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
        request = self._request(spec, name, port, cpuset, env or {}, mounts)
        if name in self._starting:
            raise _name_taken(name)
        for other, held in self._starting.items():
            if held == port:
                raise _port_taken(name, port, other)
        self._starting[name] = port  # holds the name and port while Docker starts it
        try:
            await anyio.to_thread.run_sync(self._start, request)
        finally:
            del self._starting[name]
        self._cpusets[name] = request.info.cpuset
        return request.info

    async def stop(self, name: str) -> bool:
        with anyio.CancelScope(shield=True):  # a stop that was begun ends with it removed
            stopped = await anyio.to_thread.run_sync(self._stop, name)
        self._cpusets.pop(name, None)
        return stopped

    async def set_cpuset(self, name: str, cpuset: frozenset[int]) -> ContainerInfo:
        _check_cpuset(name, cpuset)
        attrs = await anyio.to_thread.run_sync(self._repin, name, cpuset)
        self._cpusets[name] = frozenset(cpuset)
        return self._describe(attrs)

    async def set_memory(self, name: str, limit: int | None) -> ContainerInfo:
        if limit is not None and limit <= 0:
            raise InvalidRequestError(
                f"container {name!r}: a memory limit must be a positive number of bytes, "
                f"not {limit}"
            )
        attrs = await anyio.to_thread.run_sync(self._limit_memory, name, limit)
        self._memory[name] = limit
        return self._describe(attrs)

    async def list(self) -> builtins.list[ContainerInfo]:
        found = await anyio.to_thread.run_sync(self._list)
        return sorted((self._describe(attrs) for attrs in found), key=lambda info: info.name)

    async def aclose(self) -> None:
        """Stop and remove every container of this node."""
        async with anyio.create_task_group() as group:
            for info in await self.list():
                group.start_soon(self.stop, info.name)

    async def logs(self, name: str) -> str:
        """What the container printed so far; NotFoundError if there is none."""

        def read() -> str:
            output: bytes = self._find(name).logs()
            return output.decode(errors="replace")

        return await anyio.to_thread.run_sync(read)

    # Checks that need no Docker ---------------------------------------------------------

    def _request(
        self,
        spec: ContainerSpec,
        name: str,
        port: int,
        cpuset: frozenset[int],
        env: Mapping[str, str],
        mounts: Sequence[Mount],
    ) -> _Request:
        if not _NAME.fullmatch(name):
            raise InvalidRequestError(
                f"container name {name!r} is not allowed: use letters, digits, '_', '.' "
                "and '-', starting with a letter or digit"
            )
        if not 0 < port < 65536:
            raise InvalidRequestError(f"container {name!r}: port {port} is not in 1..65535")
        _check_cpuset(name, cpuset)
        if not spec.entrypoint:
            raise InvalidRequestError(f"container {name!r}: the image's entrypoint is empty")
        clashes = sorted(set(env) & set(_RESERVED))
        if clashes:
            raise InvalidRequestError(
                f"container {name!r}: the runtime sets {clashes} itself; pass other names in env"
            )
        if "BURLA_PARENT_PID" in env:
            raise InvalidRequestError(
                f"container {name!r}: BURLA_PARENT_PID names a process of the host, which a "
                "worker in a container cannot watch (it would exit at once); leave it out: "
                "the node's containers are removed by label instead"
            )
        directory = self.directory(name)
        binds = [
            (str(source), str(WORKER_PACKAGES / entry), True)
            for entry, source in self._packages.items()
        ]
        binds.append((str(directory), str(directory), False))
        binds += _mount_binds(name, directory, [*self._mounts, *mounts])
        python_path = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
        environment = {
            "HOME": str(directory),
            "PYTHONDONTWRITEBYTECODE": "1",  # the packages are read-only
            **env,
            "PYTHONPATH": ":".join([*python_path, str(WORKER_PACKAGES)]),
            "BURLA_PORT": str(port),
            "BURLA_CONTAINER_NAME": name,
            "BURLA_CONTAINER_ROOT": str(directory),
            "BURLA_CPUSET": ",".join(str(cpu) for cpu in sorted(cpuset)),
        }
        info = ContainerInfo(name=name, image=spec.image, port=port, cpuset=frozenset(cpuset))
        return _Request(
            info, self.docker_name(name), directory, list(spec.entrypoint), environment, binds
        )

    # Blocking calls to Docker: each runs in a worker thread -----------------------------

    def _start(self, request: _Request) -> None:
        import docker.errors
        from docker.types import Mount as DockerMount

        info = request.info
        if self._find_or_none(info.name) is not None:
            raise _name_taken(info.name)
        # Any node's: with host networking, ports belong to the machine.
        for other in self._client.containers.list(
            sparse=True, filters={"label": f"{PORT_LABEL}={info.port}"}
        ):
            if other.attrs.get("State") in _ALIVE:
                labels = other.attrs.get("Labels") or {}
                raise _port_taken(info.name, info.port, labels.get(NAME_LABEL, other.name))
        shutil.rmtree(request.directory, ignore_errors=True)
        try:
            request.directory.mkdir(parents=True)
        except OSError as error:
            raise BackendError(
                f"container {info.name!r}: could not make {request.directory}: {error}; "
                "check that the runtime's root is writable"
            ) from error
        try:
            container = self._client.containers.create(
                info.image,
                request.argv,
                name=request.docker_name,
                labels={
                    NODE_LABEL: self.node_id,
                    NAME_LABEL: info.name,
                    PORT_LABEL: str(info.port),
                    CPUSET_LABEL: _cpuset_text(info.cpuset),
                    IMAGE_LABEL: info.image,
                },
                environment=request.environment,
                mounts=[
                    DockerMount(target, source, type="bind", read_only=read_only)
                    for source, target, read_only in request.binds
                ],
                working_dir=str(request.directory),
                user=f"{os.getuid()}:{os.getgid()}",
                network_mode="host",
                cpuset_cpus=_cpuset_text(self.real_cpus(info.cpuset)),
                init=True,  # docker-init passes SIGTERM on, so stop is quick
            )
        except docker.errors.ImageNotFound as error:
            raise InvalidRequestError(
                f"container {info.name!r}: Docker has no image {info.image!r}; build it first "
                "(`burla image build` makes the default one) or check its name"
            ) from error
        except docker.errors.APIError as error:
            if error.status_code == 409:
                raise _name_taken(info.name) from error
            raise BackendError(
                f"Docker could not create container {info.name!r}: {error.explanation}"
            ) from error
        try:
            container.start()
        except docker.errors.APIError as error:
            container.remove(force=True)
            raise BackendError(
                f"Docker could not start container {info.name!r} of {info.image!r}: "
                f"{error.explanation}"
            ) from error

    def _stop(self, name: str) -> bool:
        import docker.errors

        container = self._find_or_none(name)
        if container is None:
            return False
        try:
            container.stop(timeout=math.ceil(self._stop_grace_s))
            container.remove(force=True)
        except docker.errors.NotFound:
            return False  # another stop removed it meanwhile
        except docker.errors.APIError as error:
            if error.status_code == 409:  # its removal is already under way
                return False
            raise BackendError(
                f"Docker could not stop container {name!r}: {error.explanation}"
            ) from error
        return True

    def _repin(self, name: str, cpuset: frozenset[int]) -> dict[str, Any]:
        import docker.errors

        container = self._find(name)
        try:
            container.update(cpuset_cpus=_cpuset_text(self.real_cpus(cpuset)))
            container.reload()
        except docker.errors.NotFound as error:
            raise _not_found(name) from error
        except docker.errors.APIError as error:
            raise BackendError(
                f"Docker could not move container {name!r} to CPUs {sorted(cpuset)}: "
                f"{error.explanation}"
            ) from error
        return _summary(container.attrs)

    def _limit_memory(self, name: str, limit: int | None) -> dict[str, Any]:
        import docker.errors

        container = self._find(name)
        # Docker cannot take a memory limit away once set: "none" is all of the machine's.
        # It takes no limit under 6 MB, which no Python process fits in anyway.
        memory = max(limit, 6 << 20) if limit is not None else _MACHINE_MEMORY
        try:
            container.update(mem_limit=memory, memswap_limit=memory)
            container.reload()
        except docker.errors.NotFound as error:
            raise _not_found(name) from error
        except docker.errors.APIError as error:
            raise BackendError(
                f"Docker could not limit container {name!r} to {limit} bytes of memory: "
                f"{error.explanation}"
            ) from error
        return _summary(container.attrs)

    def _list(self) -> builtins.list[dict[str, Any]]:
        found = self._client.containers.list(
            all=True, sparse=True, filters={"label": f"{NODE_LABEL}={self.node_id}"}
        )
        return [self._with_exit_code(container.attrs) for container in found]

    def _with_exit_code(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """A listed container's labels and state, with its exit code once it exited (the
        list call does not give it)."""
        import docker.errors

        summary = {"Labels": attrs.get("Labels") or {}, "State": attrs.get("State")}
        if summary["State"] == "exited":
            try:
                state = self._client.api.inspect_container(attrs["Id"])["State"]
            except docker.errors.NotFound:
                summary["State"] = "removed"  # stopped since the list call
            else:
                summary["ExitCode"] = state["ExitCode"]
                summary["OOMKilled"] = state.get("OOMKilled", False)
        return summary

    def _find(self, name: str) -> Container:
        container = self._find_or_none(name)
        if container is None:
            raise _not_found(name)
        return container

    def _find_or_none(self, name: str) -> Container | None:
        import docker.errors

        try:
            container: Container = self._client.containers.get(self.docker_name(name))
        except docker.errors.NotFound:
            return None
        if container.labels.get(NODE_LABEL) != self.node_id:
            return None  # a container that only shares the name is not ours
        return container

    def _describe(self, attrs: dict[str, Any]) -> ContainerInfo:
        labels = attrs["Labels"]
        name = labels[NAME_LABEL]
        cpuset = self._cpusets.get(name)
        if cpuset is None:
            cpuset = frozenset(int(cpu) for cpu in labels[CPUSET_LABEL].split(","))
        running = attrs["State"] in _ALIVE
        return ContainerInfo(
            name=name,
            image=labels[IMAGE_LABEL],
            port=int(labels[PORT_LABEL]),
            cpuset=cpuset,
            running=running,
            exit_code=None if running else attrs.get("ExitCode"),
            memory_limit=self._memory.get(name),
            out_of_memory=bool(attrs.get("OOMKilled")),
        )


def _summary(inspected: dict[str, Any]) -> dict[str, Any]:
    """What _describe needs, from a full inspect of one container."""
    state = inspected["State"]
    summary = {"Labels": inspected["Config"]["Labels"], "State": state["Status"]}
    if state["Status"] == "exited":
        summary["ExitCode"] = state["ExitCode"]
        summary["OOMKilled"] = state.get("OOMKilled", False)
    return summary


def _cpuset_text(cpus: frozenset[int] | set[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))


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


def _mount_binds(
    name: str, directory: Path, mounts: Sequence[Mount]
) -> builtins.list[tuple[str, str, bool]]:
    """The caller's mounts as binds, checked first so that a bad mount creates nothing."""
    binds: builtins.list[tuple[str, str, bool]] = []
    home = PurePosixPath(directory)
    taken = [WORKER_PACKAGES]
    for mount in mounts:
        relative = PurePosixPath(mount.target)
        if any(part in (".", "..") for part in relative.parts) or not relative.parts:
            raise InvalidRequestError(
                f"container {name!r}: mount target {mount.target!r} must name a path "
                "without '.' or '..'"
            )
        target = home / relative  # an absolute target stays as it is
        if target == home or target in home.parents:
            raise InvalidRequestError(
                f"container {name!r}: mount target {str(target)!r} would hide the "
                f"container's own directory {str(home)!r}; mount inside it or elsewhere"
            )
        for other in taken:
            if other == target or other in target.parents or target in other.parents:
                raise InvalidRequestError(
                    f"container {name!r}: mount target {str(target)!r} overlaps "
                    f"{str(other)!r}; mount each path once, away from {WORKER_PACKAGES}"
                )
        source = Path(mount.source)
        if not source.is_absolute() or not source.exists():
            raise InvalidRequestError(
                f"container {name!r}: mount source {mount.source!r} must be an absolute "
                "path that exists; create it first"
            )
        taken.append(target)
        binds.append((str(source.resolve()), str(target), mount.read_only))
    return binds


def _name_taken(name: str) -> ConflictError:
    return ConflictError(
        f"a container named {name!r} already exists; stop it first or choose another name"
    )


def _port_taken(name: str, port: int, holder: str) -> ConflictError:
    return ConflictError(
        f"container {name!r} cannot listen on port {port}: running container {holder!r} "
        f"already does; choose another port or stop {holder!r}"
    )


def _not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"there is no container {name!r} on this node; start it first or check the name"
    )
