"""burla: run one Python function over many inputs on a cluster, starting in under a second."""

from importlib.metadata import version

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

__version__ = version("burla")

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
