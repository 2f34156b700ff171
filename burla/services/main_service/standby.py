"""The standby definition: kept in the Store, grown by the images jobs bring.

main_service runs by the definition in the Store: its own settings only seed it when
there is none, so a definition changed with `PUT /standby` (`burla standby set`), and
the images jobs added, survive a restart and a takeover by another main_service.

A job may name an image the definition lacks, or bring a Dockerfile, when main_service
has an ImageMaker: the image is checked (its Python version read), added to the
definition, and started on every node, so the first job on it waits for its containers
and later ones find them warm. Each image kept costs a warm container per CPU on every
node and its disk, so at most `images_kept` images added for jobs stay: the least
recently used goes (never one a running job uses), its containers stop and the
ImageMaker frees its disk; a later job on it makes it again. The definition's order is
the images' use: an image used moves to its end.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from pydantic import ValidationError

from burla.core.cluster import ClusterMachine
from burla.core.errors import ImageError, InvalidRequestError
from burla.core.models import DEFAULT_PYTHON_VERSION, ClusterConfig, ContainerSpec, JobSpec
from burla.core.protocols import ImageMaker, Store
from burla.services.main_service.cluster_driver import ClusterDriver
from burla.services.store_keys import STANDBY_KEY

IMAGES_KEPT = 4
"""Images added for jobs that stay in the definition, at most ($BURLA_IMAGES_KEPT)."""


class Standby:
    def __init__(
        self,
        store: Store,
        machine: ClusterMachine,
        nodes: ClusterDriver,
        images: ImageMaker | None,
        *,
        images_kept: int = IMAGES_KEPT,
        running_images: Callable[[], set[str]] = set,
    ) -> None:
        """`running_images` says which images running jobs use."""
        self.store = store
        self.machine = machine
        self.nodes = nodes
        self.images = images
        self.images_kept = images_kept
        self.running_images = running_images
        self._lock = anyio.Lock()

    async def load(self) -> None:
        """Run by the stored definition; store this one if there is none, or if the one
        stored no longer reads as a definition (said on stderr)."""
        doc = await self.store.get(STANDBY_KEY)
        if doc is not None:
            try:
                self.machine.config = with_standby(self.machine.config, doc.data)
                return
            except InvalidRequestError as error:
                print(f"main_service: {error}; the stored one is replaced", file=sys.stderr)
        await self.save()

    async def save(self, config: ClusterConfig | None = None) -> None:
        """Write the standby definition main_service runs by (or `config`'s, which it is
        about to run by) to the Store."""
        standby = (config or self.machine.config).standby
        await self.store.put(STANDBY_KEY, standby.model_dump(mode="json"))

    def has(self, image: str) -> bool:
        return image in self.machine.config.standby.images

    async def image_from(self, recipe: str, context: bytes | None = None) -> str:
        """The image a Dockerfile makes, with the files of its build context."""
        if self.images is None:
            raise ImageError(
                "this cluster cannot build images; build one where its nodes can run it "
                "and pass image= instead of dockerfile="
            )
        return await self.images.build(recipe, context)

    async def add(self, image: str) -> None:
        """Put `image` in the standby definition (at its end: the latest used) and start
        its containers on every node; then let the least recently used go, beyond
        `images_kept`. One there already moves to the end."""
        if self.images is None:
            raise ImageError(f"this cluster cannot run images it does not keep: {image!r}")
        async with self._lock:
            containers = self.machine.config.standby.containers
            spec = next((s for s in containers if s.image == image), None)
            if spec is not None:
                if spec.from_job and containers[-1] is not spec:  # the latest used
                    await self._set([*(s for s in containers if s is not spec), spec])
                return
            python = await self.images.check(image)
            added = ContainerSpec(image=image, python_version=python, from_job=True)
            containers = (*containers, added)
            await self._set(containers, send=True)
            await self._trim(containers, keep=image)

    async def _trim(self, containers: Sequence[ContainerSpec], keep: str) -> None:
        """Drop the least recently used images added for jobs beyond `images_kept`, but
        not `keep` (a job comes for it) nor any a running job uses; stop their
        containers, then free their disk."""
        assert self.images is not None
        added = [spec for spec in containers if spec.from_job]
        over = len(added) - self.images_kept
        if over <= 0:
            return
        running = self.running_images() | {keep}
        dropped = [s for s in added if s.image not in running][:over]
        if not dropped:
            return
        await self._set([spec for spec in containers if spec not in dropped], send=True)
        for spec in dropped:
            await self.images.forget(spec.image)

    async def _set(self, containers: Sequence[ContainerSpec], *, send: bool = False) -> None:
        """Run by these container specs, store them, and with `send` tell every node."""
        standby = self.machine.config.standby.model_copy(update={"containers": tuple(containers)})
        self.machine.config = self.machine.config.model_copy(update={"standby": standby})
        await self.save()
        if send:
            await self.nodes.send_standby([spec.model_dump(mode="json") for spec in containers])

    def image_for(self, job: JobSpec) -> str | None:
        """The image the job runs in: the one it names, else the default image of its
        caller's Python version (InvalidRequestError if the cluster keeps none); None on
        a cluster that keeps no images, whose nodes run jobs in their own environment."""
        defaults = self.machine.config.standby.defaults
        if job.image is not None or not defaults:
            return job.image
        if job.python_version is None:  # a caller that did not say: the first default
            image = next(iter(defaults.values()), None)
        else:
            image = defaults.get(job.python_version)
        if image is None:
            kept = ", ".join(sorted(defaults)) or "none"
            raise InvalidRequestError(
                f"this cluster keeps no default image for Python {job.python_version} (it has "
                f"Python {kept}): call from one of those, or name an image with Python "
                f"{job.python_version} in image="
            )
        return image

    def python_of(self, image: str | None) -> str:
        """The Python version of the workers of `image` (a standby image, or None: the
        nodes' own environment)."""
        containers = self.machine.config.standby.containers
        python = next((s.python_version for s in containers if s.image == image), None)
        return python or DEFAULT_PYTHON_VERSION


def with_standby(config: ClusterConfig, definition: Any) -> ClusterConfig:
    """`config` with another standby definition, which must read as one."""
    try:
        return ClusterConfig.model_validate({**config.model_dump(), "standby": definition})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "the definition"
        raise InvalidRequestError(
            f"not a standby definition: {where}: {first['msg']}; "
            "see `burla standby show --json` for its shape"
        ) from None
