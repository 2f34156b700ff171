"""burla: run one Python function over many inputs on a cluster, starting in under a second."""

from burla.core.errors import (
    BackendError,
    BudgetExceededError,
    BurlaError,
    CertificateError,
    ClusterUnavailableError,
    ConflictError,
    EstimateOverBudgetError,
    FunctionExitError,
    FunctionLoadError,
    ImageError,
    InputTimeoutError,
    InvalidRequestError,
    InvariantError,
    JobError,
    JobInterruptedError,
    NodeLostError,
    NotFoundError,
    OutOfMemoryError,
    PackageInstallError,
    PayloadTooLargeError,
    RemoteError,
    ResourceRequestError,
    ResumeError,
    ResumeMismatchError,
    SerializationError,
    SignedUrlError,
    TransientBackendError,
    VersionMismatchError,
    WorkerCrashedError,
)

__all__ = [
    "BackendError",
    "BudgetExceededError",
    "BurlaError",
    "CertificateError",
    "ClusterUnavailableError",
    "ConflictError",
    "EstimateOverBudgetError",
    "FunctionExitError",
    "FunctionLoadError",
    "ImageError",
    "InputTimeoutError",
    "InvalidRequestError",
    "InvariantError",
    "JobError",
    "JobInterruptedError",
    "NodeLostError",
    "NotFoundError",
    "OutOfMemoryError",
    "PackageInstallError",
    "PayloadTooLargeError",
    "RemoteError",
    "ResourceRequestError",
    "ResumeError",
    "ResumeMismatchError",
    "SerializationError",
    "SignedUrlError",
    "TransientBackendError",
    "VersionMismatchError",
    "WorkerCrashedError",
    "__version__",
    "remote_parallel_map",
]


def __getattr__(name: str) -> object:
    # Workers import this package in an environment without the client's dependencies,
    # so the client loads on first use; reading package metadata is slow, so it waits too.
    if name == "remote_parallel_map":
        from burla.client.entry import remote_parallel_map

        return remote_parallel_map
    if name == "__version__":
        from burla.release import version

        return version()
    raise AttributeError(f"module 'burla' has no attribute {name!r}")
