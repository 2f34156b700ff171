"""Every error burla raises, in one tree.

    BurlaError                      base of everything below; catch this to catch burla
    ├── InvalidRequestError         the call asked for something that cannot be done as asked
    │   ├── ResourceRequestError    func_cpu / func_ram / func_gpu fit on no node type
    │   ├── SerializationError      the function, an input or a result cannot be pickled
    │   ├── PayloadTooLargeError    the function, an input or a request is over the size limit
    │   ├── PackageInstallError     a package the function needs could not be installed
    │   ├── ImageError              a custom image cannot be built or run burla's workers
    │   ├── VersionMismatchError    a node runs other burla code than its main_service
    │   ├── EstimateOverBudgetError the job would cost more than its max_cost: not run
    │   └── ResumeError             the job named by resume= cannot be resumed: it is still
    │       │                       running, unknown, or no longer keeps its inputs
    │       └── ResumeMismatchError this call's inputs are not those of the job it resumes
    ├── BackendError                a backend could not do what was asked
    │   ├── TransientBackendError   it failed in a way that may pass; services retry it
    │   ├── ConflictError           a compare-and-set or create-only write lost a race
    │   ├── NotFoundError           the document, blob, machine or container does not exist
    │   ├── SignedUrlError          a signed URL is expired, tampered with or used for another key
    │   └── ClusterUnavailableError the cluster could not be reached or started
    ├── AuthError                   the cluster refused the token, or its user may not do that
    │   └── CertificateError        main_service's TLS certificate is not the one pinned
    ├── JobError                    the job ran but did not deliver (has `burla_input_index`
    │   │                           where one input is to blame)
    │   ├── FunctionLoadError       the workers could not unpickle the function
    │   ├── RemoteError             the function raised an exception that could not be
    │   │                           sent back; carries its type, message and traceback text
    │   ├── FunctionExitError       the function called sys.exit (has `code`)
    │   ├── WorkerCrashedError      the worker died running an input, on every try
    │   │   └── OutOfMemoryError    it went over func_ram and was stopped
    │   ├── InputTimeoutError       an input ran past `timeout`, on every try
    │   ├── NodeLostError           an input's node was lost too many times
    │   ├── BudgetExceededError     the job's cost reached its max_cost and it was stopped
    │   │                           (the finished inputs' results are kept)
    │   └── JobInterruptedError     Ctrl-C: the job was canceled on the cluster (also a
    │                               KeyboardInterrupt)
    └── InvariantError              burla's own bookkeeping broke a rule; a bug, please report it

An exception raised by the function itself is re-raised as its own type, with the remote
traceback and a `burla_input_index` attribute. With `return_exceptions=True` it, or the
JobError of an input's failure (RemoteError, FunctionExitError, WorkerCrashedError,
InputTimeoutError, NodeLostError), stands in the results in the input's place instead;
so does a BudgetExceededError in the place of each input a job stopped by max_cost did
not finish.

Every message says what happened and what to do about it. Foreign exceptions
(sqlite, google.api_core, docker, redis) are turned into these where they
enter burla, in the backend that met them.
"""

from __future__ import annotations


class BurlaError(Exception):
    """Base class of every error burla raises on purpose."""


class SettingIgnoredWarning(UserWarning):
    """Not an error: a setting burla could not follow (a running cluster of another size,
    say); the message says why and what to do."""


class ClusterRestartedWarning(UserWarning):
    """Not an error: this machine's cluster ran another burla than the caller's (one
    installed or changed since it started), so it was stopped and started anew."""


class InvalidRequestError(BurlaError):
    """The request cannot be carried out as asked; change the arguments."""


class ResourceRequestError(InvalidRequestError):
    """A per-input resource request is larger than every node type."""


class BackendError(BurlaError):
    """A backend (store, blob store, compute, containers) refused or failed an operation."""


class TransientBackendError(BackendError):
    """A backend failed in a way that may pass (unreachable for a moment, overloaded):
    the same call may succeed if tried again. burla's services retry these."""


class BackendUnavailableError(BackendError):
    """A backend kept failing in a way that may pass for longer than burla tries one call
    again: it is down or throttled, and may come back. burla's services wait for it where
    nobody is waiting on the call; a caller is told."""


class ConflictError(BackendError):
    """A conditional write found another version than the one expected."""


class NotFoundError(BackendError):
    """The named object does not exist."""


class SignedUrlError(BackendError):
    """A signed URL was used after it expired, for another key, or with another method."""


class AuthError(BurlaError):
    """The cluster refused the token (401), or the token's user may not do that (403)."""


class CertificateError(AuthError):
    """The server at the cluster's address did not show the certificate the client pins:
    another server, or the cluster's certificate was made again. Nothing was sent to it."""


class InvariantError(BurlaError):
    """Internal state broke one of burla's rules. This is a bug in burla."""


class SerializationError(InvalidRequestError):
    """The function, an input or a result cannot be pickled."""


class PayloadTooLargeError(InvalidRequestError):
    """The function, an input or a request is larger than the cluster accepts."""

    limit: int | None = None
    """The limit in bytes, when the cluster said it."""


class PackageInstallError(InvalidRequestError):
    """A Python package the job needs could not be installed on the cluster."""


class SourceNotKeptError(PackageInstallError):
    """The cluster no longer has a package this process sent as source before (it was
    removed to keep packages within their limit); the client sends it again."""


class ImageError(InvalidRequestError):
    """A custom image (image= or dockerfile=) cannot be built, or cannot run the workers."""


class VersionMismatchError(InvalidRequestError):
    """A node runs other burla code (another build id) than its main_service: the cluster
    refuses it rather than let two versions of the wire format meet."""


class EstimateOverBudgetError(InvalidRequestError):
    """The job's estimated cost (at least its inputs' time on its nodes, at their price) is
    over its max_cost: it was refused before anything ran."""


class ResumeError(InvalidRequestError):
    """The job a call resumes (resume=, `burla jobs rerun`) cannot be resumed: it is
    still running, there is no such job, or its inputs or results are no longer kept."""


class ResumeMismatchError(ResumeError):
    """A call that resumes a job passed other inputs than the job's (another count, or an
    input whose pickled bytes differ); the message names the first that differs."""


class ClusterUnavailableError(BackendError):
    """The cluster could not be reached or started."""


class JobError(BurlaError):
    """The job did not deliver every result."""

    burla_input_index: int | None = None

    def __init__(self, message: str, input_index: int | None = None) -> None:
        super().__init__(message)
        self.burla_input_index = input_index


class FunctionLoadError(JobError):
    """The workers could not load the function."""


class RemoteError(JobError):
    """The function raised an exception that could not be pickled back."""

    def __init__(
        self, message: str, input_index: int | None, remote_type: str, remote_traceback: str
    ) -> None:
        super().__init__(message, input_index)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback


class FunctionExitError(JobError):
    """The function called sys.exit (raised SystemExit) for an input: its caller is told,
    rather than ended."""

    def __init__(self, message: str, code: object = None, input_index: int | None = None) -> None:
        super().__init__(message, input_index)
        self.code = code

    def __reduce__(self) -> tuple[type[FunctionExitError], tuple[str, object, int | None]]:
        return type(self), (str(self), self.code, self.burla_input_index)


class WorkerCrashedError(JobError):
    """The worker process died while running an input, on every try."""


class OutOfMemoryError(WorkerCrashedError):
    """The worker went over the job's func_ram running an input and was stopped, on every
    try."""


class InputTimeoutError(JobError):
    """An input ran past the job's timeout, on every try."""


class NodeLostError(JobError):
    """An input's node was lost too many times."""


class BudgetExceededError(JobError):
    """The job's cost (its nodes' time at their price) reached its max_cost, so the cluster
    stopped it. The results of the inputs that finished are kept: `burla jobs result
    JOB_ID --return-exceptions` (or job_results(JOB_ID, return_exceptions=True)) gives
    them, with this error in the place of each input that did not finish."""

    def __init__(
        self,
        message: str,
        *,
        job_id: str,
        max_cost: float,
        cost: float,
        finished: int,
        n_inputs: int,
        input_index: int | None = None,
    ) -> None:
        super().__init__(message, input_index)
        self.job_id = job_id
        self.max_cost = max_cost
        self.cost = cost
        """USD the job's nodes cost when it was stopped."""
        self.finished = finished
        """Inputs that finished (succeeded or failed) before it was stopped."""
        self.n_inputs = n_inputs


class JobInterruptedError(JobError, KeyboardInterrupt):
    """The client was interrupted (Ctrl-C); the job was canceled on the cluster."""
