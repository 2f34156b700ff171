"""Custom images: what main_service asks of a backend that can make and run them."""

from __future__ import annotations

from typing import Protocol


class ImageMaker(Protocol):
    """Makes worker images on a backend: Docker images, or venvs that stand in for them."""

    async def build(self, recipe: str) -> str:
        """The image made from `recipe` (a Dockerfile's text; for process workers, a
        requirements file's), made once; its name. ImageError if it cannot be made."""

    async def check(self, image: str) -> str:
        """The Python version (major.minor) of `image`'s workers; ImageError unless the
        nodes' workers can run in it."""
