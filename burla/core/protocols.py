"""The seams: what a backend provides (Store, BlobStore, ComputeProvider, ContainerRuntime,
ImageMaker) and the connections services talk over (Frames).

Each is small and async and speaks burla's own types. Every backend passes the same
contract suite in tests/contract/, against the real component or its official emulator.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # at run time only annotations name them: workers import no pydantic
    from burla.core.models import ContainerSpec, NodeType

Data = dict[str, Any]
"""A document's fields: str, int, float, bool, None, bytes, and lists and dicts of them."""


@dataclass(frozen=True)
class Document:
    key: str
    data: Data
    version: int


@dataclass(frozen=True)
class Claim:
    """One queue item leased to one claimer until `lease_expires`.

    `receipt` names this delivery only. It still acks and renews after the lease expires,
    until someone else claims the item; from then on it does nothing. `deliveries` counts
    claims of the item so far, this one included.
    """

    item_id: str
    data: bytes
    receipt: str
    deliveries: int
    lease_expires: float


class Store(Protocol):
    """The cluster database: versioned documents and leased work queues.

    Data outside `Data`'s types raises InvalidRequestError and writes nothing, as does a
    negative `limit` or `lease_s`; `limit=0` returns nothing.
    """

    async def get(self, key: str) -> Document | None:
        """The document at `key`, or None."""

    async def put(self, key: str, data: Data, *, if_version: int | None = None) -> Document:
        """Write a document. `if_version=0` creates only; `if_version=N` replaces version N
        only. Raises ConflictError when the condition fails. Versions start at 1."""

    async def put_many(self, docs: Mapping[str, Data], *, create_only: bool = False) -> set[str]:
        """Write many documents in one batch; returns the keys written. With `create_only`,
        keys that already exist are left as they are (the first write wins)."""

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        """Delete a document; False if there was none, whatever version `if_version` names.
        ConflictError if it exists at another version than `if_version`; InvalidRequestError
        for a negative `if_version`, whether or not the document exists."""

    async def list(
        self, prefix: str, *, after: str = "", limit: int = 1000
    ) -> builtins.list[Document]:
        """Documents whose key starts with `prefix` and sorts after `after`, in key order."""

    async def push(self, queue: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Append items (id, data) to a queue. An id already in the queue is left alone."""

    async def claim(self, queue: str, *, limit: int, lease_s: float) -> builtins.list[Claim]:
        """Lease up to `limit` available items, oldest first. An item whose lease expired
        is available again. Two claimers never hold the same item at the same time."""

    async def ack(self, queue: str, receipts: Sequence[str]) -> set[str]:
        """Remove claimed items; returns the receipts that were still current."""

    async def renew(self, queue: str, receipts: Sequence[str], *, lease_s: float) -> set[str]:
        """Extend leases to now + `lease_s`; returns the receipts that were still current.
        0 hands the items back at once and ends their receipts: a renew or ack of one
        after that does nothing, so a holder's late renew cannot lease again an item that
        was handed back for others to claim."""


class BlobStore(Protocol):
    """Bytes by key: functions, large inputs and results, package directories."""

    async def put(self, key: str, data: bytes) -> None: ...

    async def get(self, key: str) -> bytes:
        """The blob's bytes; NotFoundError if there is none."""

    async def list(self, prefix: str) -> builtins.list[str]:
        """Keys that start with `prefix`, sorted."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every blob under `prefix`; returns how many went."""

    async def signed_url(self, key: str, *, method: Literal["GET", "PUT"], expires_s: float) -> str:
        """A URL that lets its holder do `method` on this one key until it expires
        (`expires_s` > 0, else InvalidRequestError)."""


class MachineStatus(StrEnum):
    BOOTING = "booting"
    RUNNING = "running"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True)
class BootSpec:
    """What a new machine needs to start its node_service and join the cluster."""

    node_id: str
    node_type: NodeType
    main_url: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Machine:
    node_id: str
    node_type: str
    status: MachineStatus
    address: str | None = None
    """Where its node_service listens (host:port) once it is running."""
    preempted: bool = False
    """The cloud took it back (a spot VM's preemption): it is STOPPING or FAILED through no
    fault of its own, and its node is lost as soon as this is seen."""


class ComputeProvider(Protocol):
    """Machines: VMs in the cloud, processes on a laptop, simulated boots in the simulator."""

    async def create(self, boot: BootSpec) -> Machine:
        """Start a machine named `boot.node_id`; ConflictError if that name exists."""

    async def get(self, node_id: str) -> Machine | None: ...

    async def list(self) -> builtins.list[Machine]:
        """This cluster's machines, sorted by node id."""

    async def delete(self, node_id: str) -> bool:
        """Stop and remove a machine; False if there was none."""


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    image: str
    port: int
    cpuset: frozenset[int]
    running: bool = True
    exit_code: int | None = None
    memory_limit: int | None = None
    """Bytes of memory it may use (set_memory); None for no limit."""
    out_of_memory: bool = False
    """It was stopped for going over its memory limit."""


class ContainerRuntime(Protocol):
    """Containers on one node, one per CPU per container spec, each on its own port."""

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
        """Start a container; ConflictError if the name is taken or a running container
        has the port."""

    async def stop(self, name: str) -> bool:
        """Stop and remove a container; False if there was none."""

    async def set_cpuset(self, name: str, cpuset: frozenset[int]) -> ContainerInfo:
        """Pin a container to other CPUs; NotFoundError if there is none."""

    async def set_memory(self, name: str, limit: int | None) -> ContainerInfo:
        """Hold a container to `limit` bytes of memory (None: no limit). One that goes over
        is stopped and listed with `out_of_memory`; NotFoundError if there is none."""

    async def list(self) -> builtins.list[ContainerInfo]:
        """This node's containers, running or exited, sorted by name."""

    async def free_image(self, image: str) -> None:
        """Free the disk of an image this runtime fetched (pulled from its registry) that
        the node's workers no longer run; one a container still uses, one it did not
        fetch, or one gone already stays as it is."""


class ImageMaker(Protocol):
    """Makes worker images on a backend: Docker images, or venvs that stand in for them."""

    async def build(self, recipe: str, context: bytes | None = None) -> str:
        """The image made from `recipe` (a Dockerfile's text; for process workers, a
        requirements file's) and its build `context` (a gzipped tar of the files the
        Dockerfile reads), made once per both; its name. ImageError if it cannot be made."""

    async def forget(self, image: str) -> None:
        """Free the disk of an image this maker built, which the cluster no longer keeps;
        one it did not build, or gone already, is left as it is."""

    async def check(self, image: str) -> str:
        """The Python version (major.minor) of `image`'s workers; ImageError unless the
        nodes' workers can run in it."""


Frame = tuple[dict[str, Any], bytes]
"""A message: a JSON header (burla.core.wire) and opaque bytes."""


class Frames(Protocol):
    """A connection that carries frames, in order: main_service to each node and each node
    to each of its workers (TCP), or the simulator's in-memory pipes."""

    refusal: str | None = None
    """Why receive gave up on the other end, if it sent bytes that are no frame."""

    async def send(self, frames: list[Frame]) -> None:
        """Send frames together; concurrent senders never interleave."""

    async def receive(self) -> Frame | None:
        """The next frame, or None once the other end is gone or sent something that is
        no frame (a header that is not JSON, a payload over the limit: `refusal` says)."""

    async def aclose(self) -> None: ...
