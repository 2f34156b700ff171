"""How much of finished work main_service keeps, each within a limit of its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from burla.core.environment import PACKAGES_LIMIT_BYTES
from burla.services.main_service.retention import RESULTS_LIMIT_BYTES
from burla.services.main_service.standby import IMAGES_KEPT


@dataclass(frozen=True)
class Keep:
    results_bytes: int = RESULTS_LIMIT_BYTES
    """Finished jobs' results in the Store (see retention)."""
    images: int = IMAGES_KEPT
    """Images added to the standby definition for jobs (see standby)."""
    package_bytes: int = PACKAGES_LIMIT_BYTES
    """Package archives in the blob store (see packages)."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Keep:
        """$BURLA_RESULTS_MAX_GB, $BURLA_IMAGES_KEPT and $BURLA_PACKAGES_MAX_GB, where set."""
        images = environ.get("BURLA_IMAGES_KEPT")
        return cls(
            results_bytes=_bytes(environ.get("BURLA_RESULTS_MAX_GB"), RESULTS_LIMIT_BYTES),
            images=int(images) if images else IMAGES_KEPT,
            package_bytes=_bytes(environ.get("BURLA_PACKAGES_MAX_GB"), PACKAGES_LIMIT_BYTES),
        )


def _bytes(gigabytes: str | None, default: int) -> int:
    return int(float(gigabytes) * 2**30) if gigabytes else default


DEFAULT_KEEP = Keep()
