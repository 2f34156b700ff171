"""LocalContainerRuntime: a node's containers as subprocesses of its node_service, one per CPU.

A "container" here is a process, not an isolated filesystem. What stands in for Docker:

- image: a name mapped to a python executable (usually the default worker environment
  from burla.backends.local.envs). An entrypoint that starts with "python" runs that one.
- filesystem: the working directory `root/"containers"/<name>`, emptied when a container
  of that name starts; its output goes to `container.log` there and is kept after stop.
- mounts: symlinks at `<container dir>/<target without its leading slash>` pointing to
  the source, which must exist. `read_only` is advisory: a process can write through the
  link. Targets are relative to the container directory, not to `/`.
- environment: only PATH, HOME, LANG, TMPDIR and BURLA_TRACE_FILE (burla.core.trace;
  those that are set) pass through, plus
  BURLA_PORT, BURLA_CONTAINER_NAME, BURLA_CONTAINER_ROOT (its directory), BURLA_CPUSET
  (the cpuset it started with, as a comma list) and the caller's `env`, which may not
  set those four.
- cpuset: a node may have more "CPUs" than the machine (16 for I/O-bound work on a 2-core
  laptop), so virtual CPU v is pinned to real CPU `sorted(available)[v % len(available)]`,
  `available` being this process's affinity when the runtime was made. Every thread of the
  container's main process is pinned, at start and by set_cpuset; processes it starts
  inherit the affinity it has when they start and are not re-pinned later.
- exit codes: as subprocess reports them, so a container killed by signal N shows -N.
- memory: a thread reads the resident memory of each container with a limit (its main
  process and every process under it, from /proc) every MEMORY_POLL_S, and SIGKILLs the
  group of one over its limit, which is then listed with `out_of_memory`. Resident memory
  is what a limit means to the user and is read the same way on every Linux, for any user;
  address-space limits (RLIMIT_AS, RLIMIT_DATA) count reservations that are never used
  (thread stacks, allocator arenas, numpy and jax reserve gigabytes) and make the function
  raise MemoryError somewhere instead of stopping it, and a memory cgroup needs root or a
  delegated cgroup, which a laptop user does not have. A process that allocates faster
  than the poll can overshoot its limit by what it allocates in MEMORY_POLL_S.

Each container runs in its own session; stop sends SIGTERM to its process group, waits
up to `stop_grace_s`, then SIGKILLs the group and reaps the process. An exited container
is not reaped before stop, so its pid (and group id) cannot be reused while it is listed.
"""

from __future__ import annotations

import builtins
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from burla.backends.host_runtime import HostRuntime
from burla.backends.local.processes import signal_group, spawn, wait_while
from burla.backends.runtime_rules import (
    check_cpuset,
    check_free,
    check_memory_limit,
    check_start,
    mount_source,
    not_found,
    overlap,
    reserved_env,
)
from burla.core.errors import BackendError, InvalidRequestError
from burla.core.protocols import ContainerInfo, Mount
from burla.core.trace import TRACE_FILE_ENV

if TYPE_CHECKING:
    from burla.core.models import ContainerSpec

LOG_NAME = "container.log"
PASSED_THROUGH = ("PATH", "HOME", "LANG", "TMPDIR", TRACE_FILE_ENV)
"""Variables of the node's own environment that containers see; nothing else leaks in."""

MEMORY_POLL_S = 0.05
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(eq=False)
class _Container:
    info: ContainerInfo
    process: subprocess.Popen[bytes]
    out_of_memory: bool = False
    """Set by the memory watcher's thread, before it kills the container."""


class LocalContainerRuntime(HostRuntime):
    """The ContainerRuntime protocol with subprocesses of this process (see module doc)."""

    def __init__(
        self,
        root: Path,
        images: Mapping[str, str],
        *,
        stop_grace_s: float = 2.0,
        find_image: Callable[[str], str | None] | None = None,
    ) -> None:
        """`images` maps image names to python executables; `find_image` gives the
        python of an image made later (None if there is none)."""
        super().__init__(Path(root))  # each container's directory also holds its log
        self._images = dict(images)
        self._find_image = find_image
        self._stop_grace_s = stop_grace_s
        self._containers: dict[str, _Container] = {}
        self._memory_watcher: threading.Thread | None = None
        self._closed = threading.Event()

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
        python = self._python(spec.image, name)
        holders = [*self._starting.items()] + [
            (other.info.name, other.info.port)
            for other in self._containers.values()
            if _exit_status(other.process)[0]  # an exited container holds no port
        ]
        check_free(name, port, self._containers.keys() | self._starting.keys(), holders)
        links = _mount_links(name, mounts)
        directory = self.directory(name)
        environment = {key: os.environ[key] for key in PASSED_THROUGH if key in os.environ}
        environment.update(env or {})
        environment.update(reserved_env(name, port, directory, cpuset))
        argv = list(spec.entrypoint)
        if argv[0] == "python":
            argv[0] = python
        info = ContainerInfo(name=name, image=spec.image, port=port, cpuset=frozenset(cpuset))
        # Shielded: once the process exists it must be recorded, or nobody would stop it.
        with self._holding(name, port), anyio.CancelScope(shield=True):
            process = await anyio.to_thread.run_sync(self._spawn, info, argv, environment, links)
            self._containers[name] = _Container(info, process)
        return info

    async def stop(self, name: str) -> bool:
        container = self._containers.pop(name, None)
        if container is None:
            return False
        with anyio.CancelScope(shield=True):  # a stop that was begun ends with the process reaped
            await self._terminate(container.process)
        return True

    async def set_cpuset(self, name: str, cpuset: frozenset[int]) -> ContainerInfo:
        container = self._find(name)
        check_cpuset(name, cpuset)
        if _exit_status(container.process)[0]:
            self._pin(container.process.pid, cpuset)
        container.info = replace(container.info, cpuset=frozenset(cpuset))
        return self._describe(container)

    async def set_memory(self, name: str, limit: int | None) -> ContainerInfo:
        container = self._find(name)
        check_memory_limit(name, limit)
        container.info = replace(container.info, memory_limit=limit)
        if limit is not None and self._memory_watcher is None:
            self._memory_watcher = threading.Thread(
                target=self._watch_memory, name="burla-memory", daemon=True
            )
            self._memory_watcher.start()
        return self._describe(container)

    async def list(self) -> builtins.list[ContainerInfo]:
        return [self._describe(self._containers[name]) for name in sorted(self._containers)]

    async def free_image(self, image: str) -> None:
        """Nothing to free: its images are environments main_service's ImageMaker makes
        (and removes), which every node of this machine shares."""

    async def aclose(self) -> None:
        """Stop every container."""
        self._closed.set()
        async with anyio.create_task_group() as group:
            for name in builtins.list(self._containers):
                group.start_soon(self.stop, name)

    def pid(self, name: str) -> int:
        """The process id of a container's main process; NotFoundError if there is none."""
        return self._find(name).process.pid

    def _find(self, name: str) -> _Container:
        container = self._containers.get(name)
        if container is None:
            raise not_found(name)
        return container

    def _python(self, image: str, name: str) -> str:
        """The python executable of `image`, which the container `name` is to run."""
        python = self._images.get(image)
        if python is None and self._find_image is not None:
            python = self._find_image(image)
        if python is None:
            known = ", ".join(repr(other) for other in sorted(self._images)) or "none"
            raise InvalidRequestError(
                f"container {name!r}: this node has no image {image!r} "
                f"(known images: {known}); use one of those or add it to the runtime's images"
            )
        return python

    def _spawn(
        self,
        info: ContainerInfo,
        argv: builtins.list[str],
        environment: dict[str, str],
        links: dict[PurePosixPath, Path],
    ) -> subprocess.Popen[bytes]:
        """Make the container's directory and links, start its process and pin it.
        Blocking: run in a worker thread."""
        directory = self.directory(info.name)
        try:
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            for relative, source in links.items():
                (directory / relative).parent.mkdir(parents=True, exist_ok=True)
                (directory / relative).symlink_to(source)
            process = spawn(argv, directory, directory / LOG_NAME, environment)
        except OSError as error:
            raise BackendError(
                f"container {info.name!r} could not start {argv}: {error}; check the image's "
                f"python executable, the entrypoint and that {directory} is writable"
            ) from error
        try:
            self._pin(process.pid, info.cpuset)
        except BackendError:
            signal_group(process.pid, signal.SIGKILL)
            process.wait()
            raise
        return process

    def _describe(self, container: _Container) -> ContainerInfo:
        running, exit_code = _exit_status(container.process)
        return replace(
            container.info,
            running=running,
            exit_code=exit_code,
            out_of_memory=container.out_of_memory,
        )

    def _watch_memory(self) -> None:
        """Kill every container that holds more memory than its limit (see module doc)."""
        while not self._closed.wait(MEMORY_POLL_S):
            for container in builtins.list(self._containers.values()):
                limit = container.info.memory_limit
                if limit is None or container.out_of_memory:
                    continue
                if _resident(container.process.pid) > limit and _exit_status(container.process)[0]:
                    container.out_of_memory = True
                    signal_group(container.process.pid, signal.SIGKILL)

    def _pin(self, pid: int, cpuset: frozenset[int]) -> None:
        """Pin every thread of `pid`, again until no new thread appeared meanwhile."""
        cpus = self.real_cpus(cpuset)
        pinned: set[str] = set()
        for _ in range(10):
            try:
                threads = set(os.listdir(f"/proc/{pid}/task")) - pinned
            except FileNotFoundError:
                return
            if not threads:
                return
            for thread in threads:
                try:
                    os.sched_setaffinity(int(thread), cpus)
                except ProcessLookupError:
                    pass  # the thread ended meanwhile
                except OSError as error:
                    raise BackendError(
                        f"could not pin process {pid} to CPUs {sorted(cpus)}: {error}; "
                        f"this process may use only CPUs {self._available}"
                    ) from error
            pinned |= threads

    async def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        signal_group(process.pid, signal.SIGTERM)
        await wait_while(lambda: _exit_status(process)[0], self._stop_grace_s)
        signal_group(process.pid, signal.SIGKILL)  # also whatever it left in its group
        await anyio.to_thread.run_sync(process.wait)


def _mount_links(name: str, mounts: Sequence[Mount]) -> dict[PurePosixPath, Path]:
    """Where each mount's symlink goes inside the container directory, checked first so
    that a bad mount creates nothing."""
    links: dict[PurePosixPath, Path] = {}
    for mount in mounts:
        target = PurePosixPath(mount.target)
        relative = PurePosixPath(*target.parts[1:]) if target.is_absolute() else target
        if not relative.parts or any(part in (".", "..") for part in relative.parts):
            raise InvalidRequestError(
                f"container {name!r}: mount target {mount.target!r} must name a path "
                "inside the container, without '.' or '..'"
            )
        if relative.parts[0] == LOG_NAME:
            raise InvalidRequestError(
                f"container {name!r}: mount target {mount.target!r} would hide its log"
            )
        if (other := overlap(relative, links)) is not None:
            raise InvalidRequestError(
                f"container {name!r}: mount targets {str(other)!r} and "
                f"{str(relative)!r} overlap; mount each path once"
            )
        links[relative] = mount_source(name, mount)
    return links


def _exit_status(process: subprocess.Popen[bytes]) -> tuple[bool, int | None]:
    """(running, exit code) without reaping the process, so its pid stays ours."""
    if process.returncode is not None:
        return False, process.returncode
    try:
        result = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped by someone else: it is gone, its code unknown
        return False, None
    if result is None:
        return True, None
    if result.si_code == os.CLD_EXITED:
        return False, result.si_status
    return False, -result.si_status


def _resident(pid: int) -> int:
    """Bytes of memory that process `pid` and every process under it hold (resident)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/statm", "rb") as statm:
                total += int(statm.read().split()[1]) * _PAGE
            for thread in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{thread}/children", "rb") as children:
                    pending += [int(child) for child in children.read().split()]
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile
    return total
