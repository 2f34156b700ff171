"""The Google Cloud clients `burla deploy` and `burla destroy` call, each call retried
through the transient errors Google documents, and Google's refusals as burla errors.

Every client is Google's own library: Service Usage, Resource Manager, IAM (gRPC only),
Firestore Admin, Artifact Registry and Compute Engine over REST, and Cloud Storage. With
GoogleEndpoints they talk to stand-ins instead, with no credentials.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from burla.core.errors import BackendError, ConflictError, NotFoundError
from burla.deploy.options import GoogleEndpoints

try:
    from google.api_core import exceptions as google_errors
    from google.api_core import retry as google_retry
    from google.cloud import (
        artifactregistry_v1,
        compute_v1,
        firestore_admin_v1,
        iam_admin_v1,
        resourcemanager_v3,
        service_usage_v1,
        storage,
    )
except ImportError as missing:
    raise ImportError(
        f"{missing}: burla deploy needs the gcp extra; pip install 'burla-cluster[gcp]'"
    ) from missing

T = TypeVar("T")
C = TypeVar("C")
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
RETRY_TIMEOUT_S = 300.0
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


def transient(error: BaseException) -> bool:
    """Whether Google documents `error` as one to retry with backoff: 429, 500, 502, 503,
    504, and Compute Engine's 403 rate limits. (ABORTED, a read-modify-write that lost a
    race, is not: the caller reads again.)"""
    if isinstance(
        error,
        google_errors.TooManyRequests
        | google_errors.InternalServerError
        | google_errors.BadGateway
        | google_errors.ServiceUnavailable
        | google_errors.GatewayTimeout,
    ):
        return True
    if isinstance(error, google_errors.Forbidden):
        reasons = {str(e.get("reason", "")) for e in error.errors if isinstance(e, dict)}
        return bool(reasons & _RATE_REASONS)
    return False


RETRY = google_retry.Retry(
    predicate=transient, initial=0.5, maximum=10.0, multiplier=2.0, timeout=RETRY_TIMEOUT_S
)


def call(action: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`method(*args, **kwargs)`, retried through transient errors; a refusal becomes
    ConflictError, NotFoundError or BackendError saying what could not be done."""
    try:
        return RETRY(method)(*args, **kwargs)
    except (google_errors.Conflict, google_errors.PreconditionFailed) as error:
        # ALREADY_EXISTS, a lost read-modify-write, a create-only write of what exists
        raise ConflictError(f"could not {action}: {error.message}") from error
    except google_errors.NotFound as error:
        raise NotFoundError(f"could not {action}: {error.message}") from error
    except google_errors.GoogleAPICallError as error:
        raise BackendError(f"could not {action}: {error.code} {error.message}") from error
    except google_errors.RetryError as error:
        raise BackendError(
            f"could not {action}: Google kept failing for {RETRY_TIMEOUT_S:.0f} s "
            f"({error.cause}); try again later"
        ) from error


def exists(action: str, method: Callable[..., object], *args: Any, **kwargs: Any) -> bool:
    """Whether the resource `method` reads is there (NotFound: it is not)."""
    try:
        call(action, method, *args, **kwargs)
    except NotFoundError:
        return False
    return True


def result(action: str, operation: Any, timeout_s: float = 600.0) -> Any:
    """Wait for a long-running operation; its result, or a BackendError."""
    try:
        return operation.result(timeout=timeout_s, retry=RETRY)
    except google_errors.GoogleAPICallError as error:
        raise BackendError(f"could not {action}: {error.code} {error.message}") from error
    except TimeoutError as error:
        raise BackendError(f"could not {action}: not done after {timeout_s:.0f} s") from error


class GoogleClients:
    """One client per API, made when first used, for one project."""

    def __init__(self, project: str, endpoints: GoogleEndpoints | None = None) -> None:
        self.project = project
        self.endpoints = endpoints or GoogleEndpoints()

    @functools.cached_property
    def credentials(self) -> Any:
        if self.endpoints.any:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()  # type: ignore[no-untyped-call]
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, _ = google.auth.default(scopes=SCOPES)
        except DefaultCredentialsError as error:
            raise BackendError(
                f"no Google Cloud credentials ({error}); run `gcloud auth "
                "application-default login` as a user who owns the project"
            ) from None
        return credentials

    def _rest(self, client_type: Callable[..., C], endpoint: str | None) -> C:
        options = {"api_endpoint": endpoint} if endpoint else None
        return client_type(transport="rest", credentials=self.credentials, client_options=options)

    @functools.cached_property
    def services(self) -> service_usage_v1.ServiceUsageClient:
        return self._rest(service_usage_v1.ServiceUsageClient, self.endpoints.service_usage)

    @functools.cached_property
    def projects(self) -> resourcemanager_v3.ProjectsClient:
        return self._rest(resourcemanager_v3.ProjectsClient, self.endpoints.resource_manager)

    @functools.cached_property
    def databases(self) -> firestore_admin_v1.FirestoreAdminClient:
        return self._rest(firestore_admin_v1.FirestoreAdminClient, self.endpoints.firestore_admin)

    @functools.cached_property
    def repositories(self) -> artifactregistry_v1.ArtifactRegistryClient:
        return self._rest(
            artifactregistry_v1.ArtifactRegistryClient, self.endpoints.artifact_registry
        )

    @functools.cached_property
    def instances(self) -> compute_v1.InstancesClient:
        return self._rest(compute_v1.InstancesClient, self.endpoints.compute)

    @functools.cached_property
    def firewalls(self) -> compute_v1.FirewallsClient:
        return self._rest(compute_v1.FirewallsClient, self.endpoints.compute)

    @functools.cached_property
    def zone_operations(self) -> compute_v1.ZoneOperationsClient:
        return self._rest(compute_v1.ZoneOperationsClient, self.endpoints.compute)

    @functools.cached_property
    def global_operations(self) -> compute_v1.GlobalOperationsClient:
        return self._rest(compute_v1.GlobalOperationsClient, self.endpoints.compute)

    @functools.cached_property
    def accounts(self) -> iam_admin_v1.IAMClient:
        if self.endpoints.iam is None:
            return iam_admin_v1.IAMClient(credentials=self.credentials)
        import grpc  # type: ignore[import-untyped]
        from google.cloud.iam_admin_v1.services.iam.transports import IAMGrpcTransport

        channel = grpc.insecure_channel(self.endpoints.iam)
        return iam_admin_v1.IAMClient(transport=IAMGrpcTransport(channel=channel))

    @functools.cached_property
    def storage(self) -> storage.Client:
        if self.endpoints.any:  # the storage emulator, found through STORAGE_EMULATOR_HOST
            return storage.Client(project=self.project)
        return storage.Client(project=self.project, credentials=self.credentials)
