"""Custom worker images: built from a user's Dockerfile, or named, and checked before use.

burla puts container_service into any image the way it does into the default one: the
Docker runtime mounts burla and the worker's dependencies (pure Python) read-only and
runs `python -m burla.services.container_service`. So an image needs only a `python`
that burla supports, whose version `check` reads before the image joins the standby
definition: jobs from callers of that version may run in it. A Dockerfile's image is
tagged by a hash of its text and build context: the same Dockerfile and files are built
once per engine. Without a context, COPY and ADD have nothing to copy. It is built with
the host's network (the engine has no bridge), for RUN steps that install things.

With a `registry` (a cloud cluster's: Artifact Registry, or any Distribution registry),
a built image is pushed there as `REGISTRY/burla-custom:<hash>` and named so, for nodes
to pull; an image named by a job that this engine lacks is pulled before it is checked.
Both log in with `login` (see registry_login), if given.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from burla.backends.docker.client import connect
from burla.backends.docker.image import has_image, pull_image, push_image, registry_of
from burla.backends.docker.registry_login import RegistryLogin
from burla.core.errors import ImageError

if TYPE_CHECKING:
    import docker

CUSTOM_REPOSITORY = "burla-custom"
CONTEXT_DOCKERFILE = ".burla.Dockerfile"
"""Where the Dockerfile goes in a build context's archive, beside the caller's files."""
OLDEST_PYTHON = "3.11"
"""The oldest Python burla runs on (pyproject's requires-python)."""
LOG_LINES = 20
"""The build's last lines quoted in an ImageError."""


def dockerfile_tag(dockerfile: str, context: bytes | None = None) -> str:
    """The tag of a Dockerfile's image: a hash of its text and build context."""
    digest = hashlib.sha256(dockerfile.encode())
    if context is not None:
        digest.update(b"\0context\0" + hashlib.sha256(context).digest())
    return f"{CUSTOM_REPOSITORY}:{digest.hexdigest()[:16]}"


class DockerImages:
    """Builds and checks worker images on this machine's Docker engine."""

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        registry: str | None = None,
        login: RegistryLogin | None = None,
    ) -> None:
        self._client = client
        self.registry = registry
        self._login = login

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = connect()
        return self._client

    async def build(self, dockerfile: str, context: bytes | None = None) -> str:
        """The image of `dockerfile` and its build `context` (a gzipped tar), built unless
        the engine has it; its tag."""
        tag = dockerfile_tag(dockerfile, context)
        await anyio.to_thread.run_sync(self._build, dockerfile, tag, context)
        if self.registry is None:
            return tag
        pushed = f"{self.registry}/{tag}"
        await anyio.to_thread.run_sync(push_image, self.client, tag, pushed, self._login)
        return pushed

    async def forget(self, image: str) -> None:
        """Remove from this engine an image built from a Dockerfile (its tag, and the name
        it was pushed under); a copy pushed to the registry stays, for the registry's own
        clean-up rules. An image a container still runs is left."""
        if not _built_here(image):
            return
        await anyio.to_thread.run_sync(self._forget, image)

    def _forget(self, image: str) -> None:
        import docker.errors

        bare = image.rsplit("/", 1)[-1]
        for name in {image, bare}:
            try:
                self.client.images.remove(name)
            except docker.errors.ImageNotFound:
                continue
            except docker.errors.APIError as error:
                if error.status_code != 409:  # 409: a container uses it
                    raise ImageError(f"image {name!r} could not be removed: {error}") from error

    async def check(self, image: str) -> str:
        """ImageError unless the engine has `image` and it runs the node's Python; that
        Python's version."""
        return await anyio.to_thread.run_sync(self._check, image)

    def _build(self, dockerfile: str, tag: str, context: bytes | None) -> None:
        import docker.errors

        if has_image(self.client, tag):
            return
        if context is None:
            source: dict[str, Any] = {"fileobj": io.BytesIO(dockerfile.encode())}
        else:
            archive = with_dockerfile(context, dockerfile)
            source = {
                "fileobj": io.BytesIO(archive),
                "custom_context": True,
                "encoding": "gzip",
                "dockerfile": CONTEXT_DOCKERFILE,
            }
        try:
            self.client.images.build(**source, tag=tag, rm=True, forcerm=True, network_mode="host")
        except docker.errors.BuildError as error:
            lines = [str(step.get("stream") or step.get("error") or "") for step in error.build_log]
            said = "".join(lines).strip().splitlines()[-LOG_LINES:]
            raise ImageError(
                f"the Dockerfile could not be built: {error.msg}\n" + "\n".join(said)
            ) from error
        except docker.errors.APIError as error:
            raise ImageError(f"the Dockerfile could not be built: {error}") from error

    def _check(self, image: str) -> str:
        import docker.errors

        if not has_image(self.client, image):
            if registry_of(image) is None:
                raise ImageError(
                    f"the Docker engine has no image {image!r}; build or load it first "
                    "(`docker build -t NAME .`), name it with its registry "
                    "(REGISTRY/NAME:TAG), or pass dockerfile= instead of image="
                )
            pull_image(self.client, image, self._login)
        probe = "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"
        try:
            output = self.client.containers.run(
                image, ["python", "-c", probe], network_mode="none", remove=True
            )
            found = str(output.decode()).strip()
        except docker.errors.DockerException as error:
            found = f"none that runs ({error})"
        if not _supported(found):
            raise ImageError(
                f"burla's workers run in image {image!r} with its `python`, which must be "
                f"Python {OLDEST_PYTHON} or newer, but it has {found}; install a newer python3 "
                "in the image and make `python` run it"
            )
        return found


def with_dockerfile(context: bytes, dockerfile: str) -> bytes:
    """The build context's archive with the Dockerfile added as CONTEXT_DOCKERFILE, as the
    engine takes a build: ImageError if the context is no gzipped tar."""
    output = io.BytesIO()
    try:
        with (
            tarfile.open(fileobj=io.BytesIO(context), mode="r:gz") as given,
            tarfile.open(fileobj=output, mode="w:gz") as built,
        ):
            for member in given:
                if member.name.lstrip("./") == CONTEXT_DOCKERFILE:
                    continue
                built.addfile(member, given.extractfile(member) if member.isfile() else None)
            text = dockerfile.encode()
            entry = tarfile.TarInfo(CONTEXT_DOCKERFILE)
            entry.size = len(text)
            built.addfile(entry, io.BytesIO(text))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ImageError(f"the build context is not a gzipped tar archive: {error}") from None
    return output.getvalue()


def _supported(version: str) -> bool:
    """Whether burla's workers run on this Python (major.minor); their code is pure Python."""
    major, _, minor = version.partition(".")
    oldest_major, _, oldest_minor = OLDEST_PYTHON.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        return False
    return (int(major), int(minor)) >= (int(oldest_major), int(oldest_minor))


def _built_here(image: str) -> bool:
    """Whether `image` names a Dockerfile's image (dockerfile_tag), pushed or not."""
    repository, _, tag = image.rsplit("/", 1)[-1].partition(":")
    return repository == CUSTOM_REPOSITORY and len(tag) == 16
