"""The default worker images, built on this machine: Debian with python3, nothing else.

One image per Python version a cluster keeps (WORKER_SUITES): Debian bookworm's python3
is 3.11, trixie's 3.13.

No image registry may be reachable where burla runs, so nothing is pulled: debootstrap
makes a minimal Debian root from a Debian mirror and `docker import` turns it into an
image. burla and the worker's Python dependencies are not baked in; the Docker runtime
mounts them read-only into every container (see runtime.py); they are pure Python, so the
image only needs a python3 that burla supports.

The image's tag is a hash of the recipe below, so a build is done once per machine (about
a minute) and a changed recipe gets a new tag instead of reusing a stale image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from burla.backends.docker.client import connect
from burla.backends.docker.registry_login import RegistryLogin
from burla.core.errors import BackendError, ImageError
from burla.core.models import DEFAULT_PYTHON_VERSION

if TYPE_CHECKING:
    import docker

DEFAULT_IMAGE_REPOSITORY = "burla-default"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
WORKER_SUITES = {"3.11": "bookworm", "3.13": "trixie"}
"""The Debian release whose python3 is each Python version a default image can have."""
PACKAGES = ("python3", "python-is-python3")
"""python-is-python3 gives the `python` command the default entrypoint runs."""

TRIMMED = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man")
"""Directories emptied before import: nothing in a worker reads them."""

CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python"]',
)
_RECIPE_VERSION = "1"  # bump when the build below changes in a way the other fields miss


def default_image_tag(python: str = DEFAULT_PYTHON_VERSION) -> str:
    """The default image of a Python version, e.g. `burla-default:3f2a...`: a hash of its
    recipe (ImageError for a version no Debian release here has)."""
    recipe = "\n".join([_RECIPE_VERSION, _suite(python), *PACKAGES, *TRIMMED, *CHANGES])
    return f"{DEFAULT_IMAGE_REPOSITORY}:{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def _suite(python: str) -> str:
    suite = WORKER_SUITES.get(python)
    if suite is None:
        raise ImageError(
            f"burla builds default images for Python {', '.join(WORKER_SUITES)}, not {python}"
        )
    return suite


def build_default_image(
    *,
    python: str = DEFAULT_PYTHON_VERSION,
    mirror: str = DEFAULT_MIRROR,
    client: docker.DockerClient | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """Build the default image unless this engine has it; returns its tag.

    Needs root (debootstrap does) and the `debootstrap` and `tar` commands. Safe to run
    again: an image already built is reused at once.
    """
    tag = default_image_tag(python)
    suite = _suite(python)
    client = client or connect()
    if has_image(client, tag):
        echo(f"{tag} is already built")
        return tag
    _check_can_build()
    repository, version = tag.split(":")
    with tempfile.TemporaryDirectory(prefix="burla-image-") as scratch:
        root, archive = Path(scratch, "root"), Path(scratch, "root.tar")
        echo(f"building {tag}: debootstrap {suite} with {', '.join(PACKAGES)} from {mirror}")
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                suite,
                str(root),
                mirror,
            ],
            what=f"debootstrap {suite} from {mirror}",
        )
        for trimmed in TRIMMED:
            _empty(root / trimmed)
        echo(f"importing {tag} into Docker")
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(archive), "."], what="tar")
        try:
            client.api.import_image_from_file(
                str(archive), repository=repository, tag=version, changes=list(CHANGES)
            )
        except Exception as error:  # the SDK's and requests' errors alike
            raise BackendError(f"docker could not import {tag}: {error}") from error
    if not has_image(client, tag):
        raise BackendError(f"docker imported {tag} but does not list it; see dockerd's log")
    echo(f"built {tag}")
    return tag


def has_image(client: docker.DockerClient, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def registry_of(image: str) -> str | None:
    """The registry an image's name names (`host[:port]/...`), or None for a bare name.

    Only images named with their registry are pulled: a bare name would mean Docker Hub,
    which a cluster never reaches by accident.
    """
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def pull_image(client: docker.DockerClient, image: str, login: RegistryLogin | None = None) -> None:
    """Pull `image` from the registry its name names, logged in with `login`; ImageError
    quoting the registry's answer if it cannot be had (a wrong name, no access, the
    registry down)."""
    import docker.errors

    if registry_of(image) is None:
        raise ImageError(
            f"the Docker engine has no image {image!r}, and its name names no registry to "
            "pull it from (REGISTRY/NAME:TAG)"
        )
    try:
        client.images.pull(image, auth_config=_auth(login))
    except docker.errors.DockerException as error:
        said = getattr(error, "explanation", None) or str(error)
        raise ImageError(f"image {image!r} could not be pulled: {said}") from error


def push_image(
    client: docker.DockerClient, image: str, name: str, login: RegistryLogin | None = None
) -> None:
    """Push this engine's `image` to a registry as `name` (REGISTRY/REPOSITORY:TAG), logged
    in with `login`; ImageError quoting the registry if it refuses. Layers it has already
    are not sent."""
    import docker.errors

    repository, tag = name.rsplit(":", 1)
    try:
        client.images.get(image).tag(repository, tag)
        pushing = client.images.push(
            repository, tag, stream=True, decode=True, auth_config=_auth(login)
        )
        # Read to the end, errors too: a stream left unread keeps its connection open.
        errors = [str(step["error"]) for step in pushing if "error" in step]
    except docker.errors.DockerException as error:
        raise ImageError(f"image {image!r} could not be pushed as {name!r}: {error}") from error
    if errors:
        raise ImageError(f"image {image!r} could not be pushed as {name!r}: {errors[0]}")


def _auth(login: RegistryLogin | None) -> dict[str, str] | None:
    """The auth_config of a call: none without a login (the engine's own, if any)."""
    return None if login is None else login()


def publish_default_image(
    registry: str,
    python: str = DEFAULT_PYTHON_VERSION,
    client: docker.DockerClient | None = None,
    login: RegistryLogin | None = None,
) -> str:
    """Push this machine's default image of `python` to `registry`, where a cloud
    cluster's nodes pull it from, building it first if this engine lacks it (as root,
    about a minute, once per machine); its name there."""
    client = client or connect()
    tag = build_default_image(
        python=python, client=client, echo=lambda line: print(line, file=sys.stderr, flush=True)
    )
    name = f"{registry}/{tag}"
    push_image(client, tag, name, login)
    return name


def _check_can_build() -> None:
    missing = [command for command in ("debootstrap", "tar") if shutil.which(command) is None]
    if missing:
        raise BackendError(
            f"building the default image needs {' and '.join(missing)}: "
            f"apt-get install -y {' '.join(missing)}"
        )
    if os.geteuid() != 0:
        raise BackendError("building the default image runs debootstrap, which needs root")


def _run(argv: list[str], *, what: str) -> None:
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise BackendError(
            f"{what} failed (exit code {done.returncode}); check the mirror is reachable "
            f"and the disk has ~300 MB free:\n{tail}"
        )


def _empty(directory: Path) -> None:
    """Remove what is inside `directory`, keeping the directory itself."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
