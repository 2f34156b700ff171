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
  node's user and group, so the node can always clean up what they write, or as the user
  the runtime is given (a cloud node's workers, kept from the VM's credentials).
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
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from burla.backends.docker.client import connect
from burla.backends.docker.engine import ALIVE, DockerEngine, StartRequest
from burla.backends.docker.labels import (
    CPUSET_LABEL,
    IMAGE_LABEL,
    NAME_LABEL,
    NODE_LABEL,
    PORT_LABEL,
)
from burla.backends.docker.registry_login import RegistryLogin
from burla.backends.host_runtime import HostRuntime
from burla.backends.local.envs import worker_sources
from burla.backends.runtime_rules import (
    check_cpuset,
    check_free,
    check_memory_limit,
    check_start,
    cpuset_text,
    mount_source,
    overlap,
    reserved_env,
)
from burla.core.errors import InvalidRequestError
from burla.core.protocols import ContainerInfo, Mount

if TYPE_CHECKING:
    import docker

    from burla.core.models import ContainerSpec

WORKER_PACKAGES = PurePosixPath("/opt/burla/worker-packages")
"""Where burla and the worker's dependencies appear inside every container (read-only)."""

_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # no dot: it ends the node id in names


class DockerRuntime(HostRuntime):
    """The ContainerRuntime protocol on a Docker engine (see module doc)."""

    def __init__(
        self,
        node_id: str,
        root: Path,
        *,
        client: docker.DockerClient | None = None,
        stop_grace_s: float = 2.0,
        mounts: Sequence[Mount] = (),
        login: RegistryLogin | None = None,
        user: tuple[int, int] | None = None,
    ) -> None:
        """`mounts` go into every container this runtime starts, before each start's own
        (a node's shared directories: its workers' status files, the blob store). An image
        the engine lacks is pulled from the registry its name names, logged in with `login`.
        Containers run as `user` (uid, gid), this process's own unless given; each one's
        directory is that user's."""
        if not _NODE_ID.fullmatch(node_id):
            raise InvalidRequestError(
                f"node id {node_id!r} cannot label Docker containers: use letters, digits, "
                "'_' and '-', starting with a letter or digit"
            )
        super().__init__(Path(root).resolve())  # mounted at the same path inside
        self.node_id = node_id
        self._engine = DockerEngine(client or connect(), node_id, stop_grace_s, login, user)
        self._mounts = tuple(mounts)
        self._packages = worker_sources()
        self._cpusets: dict[str, frozenset[int]] = {}  # set_cpuset's, which labels cannot hold
        self._memory: dict[str, int | None] = {}  # set_memory's, likewise

    def docker_name(self, name: str) -> str:
        """The name Docker knows the container `name` by."""
        return self._engine.docker_name(name)

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
        check_free(name, port, self._starting, self._starting.items())  # Docker checks the rest
        with self._holding(name, port):
            await anyio.to_thread.run_sync(self._engine.start, request)
        self._cpusets[name] = request.info.cpuset
        return request.info

    async def stop(self, name: str) -> bool:
        with anyio.CancelScope(shield=True):  # a stop that was begun ends with it removed
            stopped = await anyio.to_thread.run_sync(self._engine.stop, name)
        self._cpusets.pop(name, None)
        return stopped

    async def set_cpuset(self, name: str, cpuset: frozenset[int]) -> ContainerInfo:
        check_cpuset(name, cpuset)
        cpus = cpuset_text(self.real_cpus(cpuset))
        attrs = await anyio.to_thread.run_sync(self._engine.repin, name, cpuset, cpus)
        self._cpusets[name] = frozenset(cpuset)
        return self._describe(attrs)

    async def set_memory(self, name: str, limit: int | None) -> ContainerInfo:
        check_memory_limit(name, limit)
        attrs = await anyio.to_thread.run_sync(self._engine.limit_memory, name, limit)
        self._memory[name] = limit
        return self._describe(attrs)

    async def list(self) -> builtins.list[ContainerInfo]:
        found = await anyio.to_thread.run_sync(self._engine.list)
        return sorted((self._describe(attrs) for attrs in found), key=lambda info: info.name)

    async def free_image(self, image: str) -> None:
        await anyio.to_thread.run_sync(self._engine.remove_pulled, image)

    async def aclose(self) -> None:
        """Stop and remove every container of this node."""
        async with anyio.create_task_group() as group:
            for info in await self.list():
                group.start_soon(self.stop, info.name)

    async def logs(self, name: str) -> str:
        """What the container printed so far; NotFoundError if there is none."""

        def read() -> str:
            output: bytes = self._engine.find(name).logs()
            return output.decode(errors="replace")

        return await anyio.to_thread.run_sync(read)

    def _request(
        self,
        spec: ContainerSpec,
        name: str,
        port: int,
        cpuset: frozenset[int],
        env: Mapping[str, str],
        mounts: Sequence[Mount],
    ) -> StartRequest:
        """The start checked and resolved, without a call to Docker."""
        check_start(spec, name, port, cpuset, env)
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
            **reserved_env(name, port, directory, cpuset),
        }
        labels = {
            NODE_LABEL: self.node_id,
            NAME_LABEL: name,
            PORT_LABEL: str(port),
            CPUSET_LABEL: cpuset_text(cpuset),
            IMAGE_LABEL: spec.image,
        }
        return StartRequest(
            info=ContainerInfo(name=name, image=spec.image, port=port, cpuset=frozenset(cpuset)),
            docker_name=self.docker_name(name),
            directory=directory,
            argv=list(spec.entrypoint),
            environment=environment,
            labels=labels,
            binds=binds,
            cpus=cpuset_text(self.real_cpus(cpuset)),
        )

    def _describe(self, attrs: dict[str, Any]) -> ContainerInfo:
        labels = attrs["Labels"]
        name = labels[NAME_LABEL]
        cpuset = self._cpusets.get(name)
        if cpuset is None:
            cpuset = frozenset(int(cpu) for cpu in labels[CPUSET_LABEL].split(","))
        running = attrs["State"] in ALIVE
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
        if (other := overlap(target, taken)) is not None:
            raise InvalidRequestError(
                f"container {name!r}: mount target {str(target)!r} overlaps "
                f"{str(other)!r}; mount each path once, away from {WORKER_PACKAGES}"
            )
        source = mount_source(name, mount)
        taken.append(target)
        binds.append((str(source.resolve()), str(target), mount.read_only))
    return binds
