"""DockerEngine: the blocking calls that make, change, find and remove one node's containers."""

from __future__ import annotations

import builtins
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from burla.backends.docker.image import pull_image, registry_of
from burla.backends.docker.labels import NAME_LABEL, NODE_LABEL, PORT_LABEL
from burla.backends.docker.registry_login import RegistryLogin
from burla.backends.runtime_rules import name_taken, not_found, port_taken
from burla.core.errors import BackendError, InvalidRequestError
from burla.core.protocols import ContainerInfo

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

ALIVE = ("running", "paused", "restarting")
"""Docker's states of a container that still runs, and so holds its port."""

_MACHINE_MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass(frozen=True)
class StartRequest:
    """A start, checked and resolved, ready to hand to Docker."""

    info: ContainerInfo
    docker_name: str
    directory: Path
    argv: list[str]
    environment: dict[str, str]
    labels: dict[str, str]
    binds: list[tuple[str, str, bool]]  # (source, target, read_only)
    cpus: str
    """The machine CPUs to pin to, as Docker's cpuset_cpus."""


class DockerEngine:
    """One node's containers on a Docker engine, told apart from others' by their labels.

    Every call blocks: DockerRuntime runs each in a worker thread. What a call returns about
    a container is a summary: its labels, state, and exit code and OOMKilled once exited.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        node_id: str,
        stop_grace_s: float,
        login: RegistryLogin | None = None,
        user: tuple[int, int] | None = None,
    ) -> None:
        """Containers run as `user` (uid, gid): this process's own unless given."""
        self._client = client
        self._node_id = node_id
        self._stop_grace_s = stop_grace_s
        self._login = login
        self._user = user or (os.getuid(), os.getgid())

    def docker_name(self, name: str) -> str:
        """The name Docker knows the container `name` by."""
        return f"{self._node_id}.{name}"

    def start(self, request: StartRequest) -> None:
        import docker.errors

        self._check_free(request.info)
        shutil.rmtree(request.directory, ignore_errors=True)
        try:
            request.directory.mkdir(parents=True)
            if self._user != (os.getuid(), os.getgid()):
                os.chown(request.directory, *self._user)  # the worker's home
        except OSError as error:
            raise BackendError(
                f"container {request.info.name!r}: could not make {request.directory}: "
                f"{error}; check that the runtime's root is writable"
            ) from error
        container = self._create(request)
        try:
            container.start()
        except docker.errors.APIError as error:
            container.remove(force=True)
            raise BackendError(
                f"Docker could not start container {request.info.name!r} of "
                f"{request.info.image!r}: {error.explanation}"
            ) from error

    def stop(self, name: str) -> bool:
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

    def remove_pulled(self, image: str) -> None:
        """Remove an image pulled from its registry, unless a container uses it. One with
        no registry in its name was built or loaded on this machine: not the node's."""
        import docker.errors

        if registry_of(image) is None:
            return
        try:
            self._client.images.remove(image)
        except docker.errors.ImageNotFound:
            return
        except docker.errors.APIError as error:
            if error.status_code == 409:  # a container uses it
                return
            raise BackendError(
                f"Docker could not remove image {image!r}: {error.explanation}"
            ) from error

    def repin(self, name: str, cpuset: frozenset[int], cpus: str) -> dict[str, Any]:
        """Move the container to the machine CPUs `cpus`, which its (virtual) cpuset names."""
        return self._update(
            name,
            f"move container {name!r} to CPUs {sorted(cpuset)}",
            cpuset_cpus=cpus,
        )

    def limit_memory(self, name: str, limit: int | None) -> dict[str, Any]:
        # Docker cannot take a memory limit away once set: "none" is all of the machine's.
        # It takes no limit under 6 MB, which no Python process fits in anyway.
        memory = max(limit, 6 << 20) if limit is not None else _MACHINE_MEMORY
        return self._update(
            name,
            f"limit container {name!r} to {limit} bytes of memory",
            mem_limit=memory,
            memswap_limit=memory,
        )

    def list(self) -> builtins.list[dict[str, Any]]:
        found = self._client.containers.list(
            all=True, sparse=True, filters={"label": f"{NODE_LABEL}={self._node_id}"}
        )
        return [self._with_exit_code(container.attrs) for container in found]

    def find(self, name: str) -> Container:
        container = self._find_or_none(name)
        if container is None:
            raise not_found(name)
        return container

    def _check_free(self, info: ContainerInfo) -> None:
        """ConflictError if the container's name or port is taken."""
        if self._find_or_none(info.name) is not None:
            raise name_taken(info.name)
        # Any node's: with host networking, ports belong to the machine.
        for other in self._client.containers.list(
            sparse=True, filters={"label": f"{PORT_LABEL}={info.port}"}
        ):
            if other.attrs.get("State") in ALIVE:
                labels = other.attrs.get("Labels") or {}
                raise port_taken(info.name, info.port, labels.get(NAME_LABEL, other.name))

    def _create(self, request: StartRequest, *, pulled: bool = False) -> Container:
        import docker.errors
        from docker.types import Mount as DockerMount

        info = request.info
        try:
            return self._client.containers.create(
                info.image,
                request.argv,
                name=request.docker_name,
                labels=request.labels,
                environment=request.environment,
                mounts=[
                    DockerMount(target, source, type="bind", read_only=read_only)
                    for source, target, read_only in request.binds
                ],
                working_dir=str(request.directory),
                user="{}:{}".format(*self._user),
                network_mode="host",
                cpuset_cpus=request.cpus,
                init=True,  # docker-init passes SIGTERM on, so stop is quick
            )
        except docker.errors.ImageNotFound as error:
            if not pulled and registry_of(info.image) is not None:
                # Not on this machine yet: its registry has it (a cloud node's images do).
                pull_image(self._client, info.image, self._login)
                return self._create(request, pulled=True)
            raise InvalidRequestError(
                f"container {info.name!r}: Docker has no image {info.image!r}; build it first "
                "(`burla image build` makes the default one) or check its name"
            ) from error
        except docker.errors.APIError as error:
            if error.status_code == 409:
                raise name_taken(info.name) from error
            raise BackendError(
                f"Docker could not create container {info.name!r}: {error.explanation}"
            ) from error

    def _update(self, name: str, action: str, **settings: Any) -> dict[str, Any]:
        """`docker update` the container; `action` says what for, in errors."""
        import docker.errors

        container = self.find(name)
        try:
            container.update(**settings)
            container.reload()
        except docker.errors.NotFound as error:
            raise not_found(name) from error
        except docker.errors.APIError as error:
            raise BackendError(f"Docker could not {action}: {error.explanation}") from error
        return _summary(container.attrs)

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

    def _find_or_none(self, name: str) -> Container | None:
        import docker.errors

        try:
            container: Container = self._client.containers.get(self.docker_name(name))
        except docker.errors.NotFound:
            return None
        if container.labels.get(NODE_LABEL) != self._node_id:
            return None  # a container that only shares the name is not ours
        return container


def _summary(inspected: dict[str, Any]) -> dict[str, Any]:
    """What a summary holds, from a full inspect of one container."""
    state = inspected["State"]
    summary = {"Labels": inspected["Config"]["Labels"], "State": state["Status"]}
    if state["Status"] == "exited":
        summary["ExitCode"] = state["ExitCode"]
        summary["OOMKilled"] = state.get("OOMKilled", False)
    return summary
