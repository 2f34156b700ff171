"""Rules every ContainerRuntime applies the same way: its checks, their messages, CPU pinning."""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from burla.backends.path_names import check_path_name
from burla.core.errors import ConflictError, InvalidRequestError, NotFoundError
from burla.core.protocols import Mount

if TYPE_CHECKING:  # workers import no pydantic
    from burla.core.models import ContainerSpec

RESERVED_ENV = ("BURLA_PORT", "BURLA_CONTAINER_NAME", "BURLA_CONTAINER_ROOT", "BURLA_CPUSET")
"""Variables a runtime sets in every container itself; a start's `env` may not set them."""


def reserved_env(name: str, port: int, directory: Path, cpuset: frozenset[int]) -> dict[str, str]:
    """The RESERVED_ENV variables, as a runtime sets them for the container `name`."""
    return {
        "BURLA_PORT": str(port),
        "BURLA_CONTAINER_NAME": name,
        "BURLA_CONTAINER_ROOT": str(directory),
        "BURLA_CPUSET": cpuset_text(cpuset),
    }


def check_start(
    spec: ContainerSpec, name: str, port: int, cpuset: frozenset[int], env: Mapping[str, str]
) -> None:
    """Refuse a start that cannot work, before anything is made."""
    check_path_name("container name", name)
    if not 0 < port < 65536:
        raise InvalidRequestError(f"container {name!r}: port {port} is not in 1..65535")
    check_cpuset(name, cpuset)
    if not spec.entrypoint:
        raise InvalidRequestError(f"container {name!r}: the image's entrypoint is empty")
    clashes = sorted(set(env) & set(RESERVED_ENV))
    if clashes:
        raise InvalidRequestError(
            f"container {name!r}: the runtime sets {clashes} itself; pass other names in env"
        )


def check_free(
    name: str, port: int, names: Container[str], holders: Iterable[tuple[str, int]]
) -> None:
    """ConflictError if `names` has `name`, or one of `holders` (a name and the port it
    listens on) has `port`: a start may take neither."""
    if name in names:
        raise name_taken(name)
    for holder, held in holders:
        if held == port:
            raise port_taken(name, port, holder)


def check_cpuset(name: str, cpuset: frozenset[int]) -> None:
    if not cpuset:
        raise InvalidRequestError(
            f"container {name!r} needs at least one CPU in its cpuset; got an empty set"
        )
    negative = sorted(cpu for cpu in cpuset if cpu < 0)
    if negative:
        raise InvalidRequestError(
            f"container {name!r}: CPU numbers start at 0, so {negative} cannot be pinned"
        )


def check_memory_limit(name: str, limit: int | None) -> None:
    if limit is not None and limit <= 0:
        raise InvalidRequestError(
            f"container {name!r}: a memory limit must be a positive number of bytes, not {limit}"
        )


def mount_source(name: str, mount: Mount) -> Path:
    """The mount's source, which must be an absolute path that exists."""
    source = Path(mount.source)
    if not source.is_absolute() or not source.exists():
        raise InvalidRequestError(
            f"container {name!r}: mount source {mount.source!r} must be an absolute "
            "path that exists; create it first"
        )
    return source


def overlap(target: PurePosixPath, taken: Iterable[PurePosixPath]) -> PurePosixPath | None:
    """The first path of `taken` that is `target`, lies inside it or holds it: a mount at
    `target` would hide it or be hidden by it."""
    for other in taken:
        if other == target or other in target.parents or target in other.parents:
            return other
    return None


def cpuset_text(cpus: frozenset[int] | set[int]) -> str:
    """CPU numbers as a sorted comma list, as BURLA_CPUSET and Docker spell them."""
    return ",".join(str(cpu) for cpu in sorted(cpus))


def real_cpus(cpuset: frozenset[int], available: Sequence[int]) -> set[int]:
    """The machine CPUs that a (virtual) cpuset runs on: a node may have more CPUs than the
    machine, so virtual CPU v runs on `available[v % len(available)]`."""
    return {available[cpu % len(available)] for cpu in cpuset}


def name_taken(name: str) -> ConflictError:
    return ConflictError(
        f"a container named {name!r} already exists; stop it first or choose another name"
    )


def port_taken(name: str, port: int, holder: str) -> ConflictError:
    return ConflictError(
        f"container {name!r} cannot listen on port {port}: running container {holder!r} "
        f"already does; choose another port or stop {holder!r}"
    )


def not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"there is no container {name!r} on this node; start it first or check the name"
    )
