"""burla: run one Python function over many inputs on a cluster, starting in under a second."""

from importlib.metadata import PackageNotFoundError, version

from burla.core.errors import (
    BackendError,
    BurlaError,
    ClusterUnavailableError,
    ConflictError,
    FunctionLoadError,
    InputTimeoutError,
    InvalidRequestError,
    InvariantError,
    JobError,
    JobInterruptedError,
    NodeLostError,
    NotFoundError,
    PayloadTooLargeError,
    RemoteError,
    ResourceRequestError,
    SerializationError,
    SignedUrlError,
    WorkerCrashedError,
)

try:
    __version__ = version("burla")
except PackageNotFoundError:  # a worker environment links the package without its metadata
    __version__ = "unknown"

__all__ = [
    "BackendError",
    "BurlaError",
    "ClusterUnavailableError",
    "ConflictError",
    "FunctionLoadError",
    "InputTimeoutError",
    "InvalidRequestError",
    "InvariantError",
    "JobError",
    "JobInterruptedError",
    "NodeLostError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RemoteError",
    "ResourceRequestError",
    "SerializationError",
    "SignedUrlError",
    "WorkerCrashedError",
    "__version__",
    "remote_parallel_map",
]


def __getattr__(name: str) -> object:
    # Workers import this package in an environment without the client's dependencies,
    # so the client loads on first use.
    if name == "remote_parallel_map":
        from burla.client.map import remote_parallel_map

        return remote_parallel_map
    raise AttributeError(f"module 'burla' has no attribute {name!r}")
