"""burla: run one Python function over many inputs on a cluster, starting in under a second."""

from importlib.metadata import PackageNotFoundError, version

from burla.core.errors import (
    BackendError,
    BurlaError,
    ConflictError,
    InvalidRequestError,
    InvariantError,
    NotFoundError,
    ResourceRequestError,
    SignedUrlError,
)

try:
    __version__ = version("burla")
except PackageNotFoundError:  # a worker environment links the package without its metadata
    __version__ = "unknown"

__all__ = [
    "BackendError",
    "BurlaError",
    "ConflictError",
    "InvalidRequestError",
    "InvariantError",
    "NotFoundError",
    "ResourceRequestError",
    "SignedUrlError",
    "__version__",
]
