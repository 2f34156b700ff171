"""Custom images of the local backend without Docker: venvs built from a requirements file.

`dockerfile=` names a requirements file here. Its venv is a worker environment like the
default one (burla and the worker's dependencies linked in, nothing else) with the
requirements installed by pip; it is named by a hash of the file's text, so the same file
is built once per cluster directory. Layout: `root/"images"/"venv-<hash>"`, complete once
its `complete` marker exists (console scripts name the venv's path, so it is built in place
and a half-built one is built again).
"""

from __future__ import annotations

import functools
import hashlib
import re
import shutil
import sys
from pathlib import Path

import anyio
import anyio.to_thread

from burla.backends.local.envs import LOCAL_DEFAULT_IMAGE, build_worker_env
from burla.core.errors import ImageError

VENV_IMAGE_PREFIX = "venv-"
VENV_IMAGE = re.compile(rf"{VENV_IMAGE_PREFIX}[0-9a-f]{{16}}")
LOG_LINES = 20
_COMPLETE = "complete"


def venv_image_name(requirements: str) -> str:
    return f"{VENV_IMAGE_PREFIX}{hashlib.sha256(requirements.encode()).hexdigest()[:16]}"


def venv_image_python(root: Path, image: str) -> str | None:
    """The python of a built venv image under `root`, or None if there is no such image."""
    env_dir = Path(root) / "images" / image
    if not image.startswith(VENV_IMAGE_PREFIX) or not (env_dir / _COMPLETE).exists():
        return None
    return str(env_dir / "bin" / "python")


class LocalVenvImages:
    """Builds and checks the local backend's venv images under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = anyio.Lock()

    async def build(self, requirements: str, context: bytes | None = None) -> str:
        if context is not None:
            raise ImageError(
                "a build context is for a Dockerfile's COPY and ADD; this cluster's workers "
                "are processes, whose images are built from a requirements file alone "
                "(use backend='docker' for Dockerfiles)"
            )
        image = venv_image_name(requirements)
        async with self._lock:
            if venv_image_python(self.root, image) is None:
                await self._build(image, requirements)
        return image

    async def forget(self, image: str) -> None:
        """Remove a venv image's folder (not while one is being built)."""
        if not VENV_IMAGE.fullmatch(image):
            return
        async with self._lock:
            await anyio.to_thread.run_sync(
                functools.partial(shutil.rmtree, self.root / "images" / image, ignore_errors=True)
            )

    async def check(self, image: str) -> str:
        """The venv image's Python version (the node's, which built it), if it exists."""
        if image != LOCAL_DEFAULT_IMAGE and venv_image_python(self.root, image) is None:
            raise ImageError(
                f"this local cluster has no image {image!r}: without Docker it runs its "
                "default environment and venvs built from a requirements file; pass "
                "dockerfile='requirements.txt' (or use backend='docker' for Docker images)"
            )
        return f"{sys.version_info.major}.{sys.version_info.minor}"

    async def _build(self, image: str, requirements: str) -> None:
        env_dir = self.root / "images" / image
        shutil.rmtree(env_dir, ignore_errors=True)  # a build that was cut short
        env_dir.parent.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(build_worker_env, env_dir)
        (env_dir / "requirements.txt").write_text(requirements)
        pip = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python")]
        command = [*pip, "install", "--no-input", "-r", str(env_dir / "requirements.txt")]
        result = await anyio.run_process(command, check=False)
        if result.returncode != 0:
            said = result.stderr.decode(errors="replace").strip().splitlines()[-LOG_LINES:]
            shutil.rmtree(env_dir, ignore_errors=True)
            raise ImageError(
                "the requirements file could not be installed into a venv; pip said:\n"
                + "\n".join(said)
            )
        (env_dir / _COMPLETE).touch()
