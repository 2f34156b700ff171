"""How big a request burla's services take, shared by the services and the client.

Each limit comes from an environment variable (in MB or KB) so that a cluster and its
clients can agree on it; the defaults hold jobs of every size burla ships (big inputs go
through the blob store, so a job's request holds at most 1 MB per input).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from burla.core.errors import InvalidRequestError

JOB_REQUEST_ENV = "BURLA_MAX_JOB_REQUEST_MB"
REQUEST_ENV = "BURLA_MAX_REQUEST_KB"
FRAME_ENV = "BURLA_MAX_FRAME_MB"
MAX_UPLOADS = 10_000
"""Signed URLs main_service gives in one answer: a job with more big inputs asks again."""


@dataclass(frozen=True)
class RequestLimits:
    job_request: int = 256 << 20
    """POST /jobs: the job's spec, its function and every inline input, in bytes."""
    request: int = 1 << 20
    """Every other HTTP request's body, in bytes."""
    frame: int = 1 << 30
    """One frame between main_service, a node and its workers, in bytes: the largest
    function or batch of inputs passes inline (burla refuses payloads over 1 GB)."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RequestLimits:
        return cls(
            job_request=_size(environ, JOB_REQUEST_ENV, cls.job_request >> 20, 1 << 20),
            request=_size(environ, REQUEST_ENV, cls.request >> 10, 1 << 10),
            frame=_size(environ, FRAME_ENV, cls.frame >> 20, 1 << 20),
        )


def _size(environ: Mapping[str, str], name: str, default: int, unit: int) -> int:
    raw = environ.get(name)
    if not raw:
        return default * unit
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise InvalidRequestError(f"{name}={raw!r} is not a positive number; unset it or fix it")
    return int(value * unit)
