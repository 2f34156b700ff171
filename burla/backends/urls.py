"""Open a Store or BlobStore from the URL that services and workers are given.

One URL names the same store for main_service and for every node, so a cluster's nodes
are told where its state lives by two strings in their environment.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from burla.core.clock import Clock, WallClock
from burla.core.errors import BackendError, InvalidRequestError
from burla.core.protocols import BlobStore, Store

if TYPE_CHECKING:
    from google.auth.credentials import Signing

GCP_EXTRA = "pip install 'burla-cluster[gcp]'"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def open_store(url: str, clock: Clock | None = None) -> Store:
    """`sqlite:///path/to/store.db`, `redis://host:port/db?namespace=NAME` or
    `firestore://PROJECT/NAMESPACE` (FIRESTORE_EMULATOR_HOST, when set, names an emulator)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from burla.backends.local.store import SqliteStore

        return SqliteStore(parts.path, clock or WallClock())
    if parts.scheme in ("redis", "rediss"):
        from burla.backends.redis import RedisStore

        # redis-py hands unknown URL parameters to the connection, so ours comes out first.
        query = dict(parse_qsl(parts.query))
        namespace = query.pop("namespace", "burla")
        plain = urlunsplit(parts._replace(query=urlencode(query)))
        return RedisStore.from_url(plain, namespace=namespace, clock=clock)
    if parts.scheme == "firestore":
        namespace = parts.path.strip("/")
        if not parts.netloc or not namespace:
            raise InvalidRequestError(
                f"{url!r} names no project or namespace; use firestore://PROJECT/NAMESPACE"
            )
        try:
            from burla.backends.gcp.firestore_store import FirestoreStore
        except ImportError as missing:
            raise ImportError(f"{missing}: a Firestore store needs {GCP_EXTRA}") from missing
        return FirestoreStore(parts.netloc, namespace, clock=clock or WallClock())
    raise InvalidRequestError(
        f"no store for {url!r}; use sqlite:///PATH, redis://HOST:PORT/DB?namespace=NAME "
        "or firestore://PROJECT/NAMESPACE"
    )


async def close_store(store: Store) -> None:
    """Close a store opened by `open_store` (some close at once, some must be awaited)."""
    closed = store.close()  # type: ignore[attr-defined]
    if inspect.isawaitable(closed):
        await closed


def open_blobs(url: str, secret: bytes, clock: Clock | None = None) -> BlobStore:
    """`file:///path/to/directory` or `gs://BUCKET/NAMESPACE[?signer=KEY_FILE|iam]`.

    A gs:// store signs URLs with the client's own credentials, unless `signer` names a
    service account key file or says `iam`: sign through the IAM API as the service
    account of the application default credentials (a VM's or a Cloud Run service's,
    whose credentials hold no key). STORAGE_EMULATOR_HOST, when set, names an emulator.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        from burla.backends.local.blobs import DirectoryBlobStore

        return DirectoryBlobStore(parts.path, secret, clock or WallClock())
    if parts.scheme == "gs":
        try:
            from burla.backends.gcp.gcs_blobs import GcsBlobStore
        except ImportError as missing:
            raise ImportError(f"{missing}: a Cloud Storage blob store needs {GCP_EXTRA}") from None
        query = dict(parse_qsl(parts.query))
        signer = query.pop("signer", None)
        if query:
            raise InvalidRequestError(
                f"{url!r}: unknown parameter {sorted(query)[0]!r}; gs:// URLs take only signer"
            )
        signing = None if signer is None else signing_credentials(signer)
        return GcsBlobStore(
            parts.netloc, namespace=parts.path.strip("/"), signing_credentials=signing
        )
    raise InvalidRequestError(
        f"no blob store for {url!r}; use file:///DIRECTORY or gs://BUCKET/NAMESPACE"
    )


def signing_credentials(signer: str) -> Signing:
    """Credentials that sign Cloud Storage URLs: `iam`, or a service account key file."""
    from google.auth.exceptions import GoogleAuthError
    from google.oauth2 import service_account

    if signer != "iam":
        try:
            return service_account.Credentials.from_service_account_file(signer)  # type: ignore[no-untyped-call,no-any-return]
        except (OSError, ValueError) as error:
            raise InvalidRequestError(
                f"cannot sign URLs with {signer!r}: {error}; give the path of a service "
                "account key file (JSON), or `iam`"
            ) from error
    import google.auth
    import google.auth.iam
    import google.auth.transport.requests

    request = google.auth.transport.requests.Request()
    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        credentials.refresh(request)  # type: ignore[no-untyped-call]  # on a VM, this learns the service account's address
    except GoogleAuthError as error:
        raise BackendError(
            f"cannot sign URLs through IAM: no usable Google Cloud credentials ({error}); run "
            "on a VM or Cloud Run service with a service account, or give a key file instead"
        ) from error
    email = getattr(credentials, "service_account_email", None)
    if not email or email == "default":
        raise BackendError(
            "cannot sign URLs through IAM: the application default credentials are not a "
            "service account's (user credentials?); run as a service account, or give a key file"
        )
    iam_signer = google.auth.iam.Signer(request, credentials, email)  # type: ignore[no-untyped-call]
    return service_account.Credentials(iam_signer, email, "https://oauth2.googleapis.com/token")  # type: ignore[no-untyped-call]
