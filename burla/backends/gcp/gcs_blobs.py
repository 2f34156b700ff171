"""GcsBlobStore: the BlobStore protocol on a Google Cloud Storage bucket, with V4 signed URLs.

The blob "a/b" is the object `<namespace>/a/b` of the store's bucket, so several clusters
(or test runs) share one bucket without seeing each other's blobs. google-cloud-storage is
synchronous: every call runs in a worker thread on the store's one client, and transient
failures are retried for at most `timeout_s`.

A signed URL is a V4 URL that Cloud Storage itself checks: it names one object and one
method and expires after `expires_s` (7 days at most). Blob keys name their job
(`uploads/<job>/...`), so a URL grants one blob of one job, for a limited time. URLs are
signed with a service account's key: `signing_credentials`, or the client's own
credentials when they hold one.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Literal, TypeVar

import anyio

from burla.core.errors import BackendError, BurlaError, InvalidRequestError, NotFoundError

try:
    from google.api_core import exceptions as google_errors
    from google.auth.credentials import Signing
    from google.auth.exceptions import GoogleAuthError
    from google.cloud.storage import Client  # type: ignore[import-untyped]
    from google.cloud.storage.exceptions import (  # type: ignore[import-untyped]
        DataCorruption,
    )
    from google.cloud.storage.retry import DEFAULT_RETRY  # type: ignore[import-untyped]
except ImportError as missing:
    raise ImportError(
        f"{missing}: burla's Cloud Storage blob store needs the gcp extra; "
        "pip install 'burla-cluster[gcp]'"
    ) from missing

T = TypeVar("T")

MAX_URL_LIFETIME_S = 7 * 24 * 3600
"""Cloud Storage refuses V4 signed URLs that live longer than 7 days."""

MAX_OBJECT_NAME_BYTES = 1024

DELETE_THREADS = 8
"""Deletes in flight at once; below the HTTP client's pool of 10 connections per host."""


def _key_problem(key: object) -> str | None:
    """Why `key` cannot name a blob, or None if it can."""
    if not isinstance(key, str):
        return f"is a {type(key).__name__}, not a str"
    if not key:
        return "is empty"
    if "\r" in key or "\n" in key:
        return "holds a line break, which Cloud Storage object names may not"
    try:
        key.encode()
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    return None


class GcsBlobStore:
    """The BlobStore protocol in one Cloud Storage bucket, under an optional namespace.

    `client` is a google.cloud.storage.Client; by default the store builds one for
    `project` from the application default credentials, or for the emulator that
    STORAGE_EMULATOR_HOST names. Give
    `signing_credentials` (for example
    `google.oauth2.service_account.Credentials.from_service_account_file(path)`) when the
    client's credentials cannot sign, as on Compute Engine.
    """

    def __init__(
        self,
        bucket: str,
        *,
        namespace: str = "",
        client: Any = None,
        project: str | None = None,
        signing_credentials: Signing | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        if not isinstance(bucket, str) or not bucket or "/" in bucket:
            raise InvalidRequestError(
                f"{bucket!r} is not a bucket name: pass the bucket alone, like 'my-bucket' "
                "(without gs:// or a path; put a path in `namespace`)"
            )
        if not isinstance(namespace, str) or namespace.startswith("/"):
            raise InvalidRequestError(
                f"namespace {namespace!r} must be a str that does not start with '/', "
                "like 'cluster-1'"
            )
        if not timeout_s > 0:
            raise InvalidRequestError(f"timeout_s must be more than 0, not {timeout_s}")
        self._namespace = namespace.strip("/") + "/" if namespace.strip("/") else ""
        self._client = client if client is not None else _default_client(project)
        self._bucket = self._client.bucket(bucket)
        self._signer = signing_credentials
        self._timeout_s = timeout_s
        self._retry = DEFAULT_RETRY.with_timeout(timeout_s)

    @property
    def bucket(self) -> str:
        return str(self._bucket.name)

    @property
    def namespace(self) -> str:
        """The prefix of every object this store writes: '' or ends with '/'."""
        return self._namespace

    async def put(self, key: str, data: bytes) -> None:
        name = self._object_name(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidRequestError(
                f"blob {key!r}: data is a {type(data).__name__}, not bytes; serialize it first"
            )
        payload = bytes(data)

        def upload() -> None:
            # A retried upload writes the same bytes again, so every upload may be retried.
            self._bucket.blob(name).upload_from_string(
                payload, retry=self._retry, timeout=self._timeout_s
            )

        await self._run(f"writing blob {key!r}", upload)

    async def get(self, key: str) -> bytes:
        name = self._object_name(key)

        def download() -> bytes:
            try:
                data: bytes = self._bucket.blob(name).download_as_bytes(
                    retry=self._retry, timeout=self._timeout_s
                )
            except google_errors.NotFound:
                if not self._bucket_exists():
                    raise  # reported as the missing bucket it is
                raise NotFoundError(
                    f"there is no blob {key!r} in gs://{self.bucket}/{self._namespace}: check "
                    "the key, or put the blob before reading it"
                ) from None
            return data

        return await self._run(f"reading blob {key!r}", download)

    async def list(self, prefix: str) -> builtins.list[str]:
        self._check_prefix(prefix)
        names = await self._run(f"listing the blobs under {prefix!r}", self._names, prefix)
        return sorted(name[len(self._namespace) :] for name in names)

    async def delete_prefix(self, prefix: str) -> int:
        self._check_prefix(prefix)

        def delete_all() -> int:
            names = self._names(prefix)
            with ThreadPoolExecutor(DELETE_THREADS) as pool:
                return sum(pool.map(self._delete_object, names))

        return await self._run(f"deleting the blobs under {prefix!r}", delete_all)

    async def signed_url(self, key: str, *, method: Literal["GET", "PUT"], expires_s: float) -> str:
        name = self._object_name(key)
        if method not in ("GET", "PUT"):
            raise InvalidRequestError(f"signed URLs are for GET or PUT, not {method!r}")
        if not 0 < expires_s <= MAX_URL_LIFETIME_S:
            raise InvalidRequestError(
                f"expires_s must be more than 0 and at most {MAX_URL_LIFETIME_S} (7 days, "
                f"the longest Cloud Storage allows), not {expires_s}"
            )
        # V4 URLs count whole seconds; rounding up never cuts a lifetime short.
        lifetime = timedelta(seconds=math.ceil(expires_s))

        def sign() -> str:
            try:
                url: str = self._bucket.blob(name).generate_signed_url(
                    version="v4", expiration=lifetime, method=method, credentials=self._signer
                )
            except AttributeError as error:  # the library's way to say "cannot sign"
                raise BackendError(
                    f"cannot sign a URL for blob {key!r}: the credentials in use hold no "
                    f"private key ({error}); give the store signing_credentials, e.g. "
                    "google.oauth2.service_account.Credentials.from_service_account_file(path)"
                ) from error
            return url

        # Signing is local work with a key file, but may call IAM with other credentials.
        return await self._run(f"signing a URL for blob {key!r}", sign)

    # Objects

    def _object_name(self, key: str) -> str:
        problem = _key_problem(key)
        if problem is None and len((self._namespace + key).encode()) > MAX_OBJECT_NAME_BYTES:
            problem = f"makes an object name longer than {MAX_OBJECT_NAME_BYTES} bytes"
        if problem is not None:
            raise InvalidRequestError(f"blob key {key!r} {problem}: use another key")
        return self._namespace + key

    def _check_prefix(self, prefix: str) -> None:
        if not isinstance(prefix, str):
            raise InvalidRequestError(
                f"a blob prefix is a str, not a {type(prefix).__name__}: pass a str"
            )

    def _names(self, prefix: str) -> builtins.list[str]:
        """Names of the objects under `prefix` (in this namespace), in no promised order."""
        blobs = self._client.list_blobs(
            self._bucket,
            prefix=self._namespace + prefix,
            fields="items(name),nextPageToken",
            retry=self._retry,
            timeout=self._timeout_s,
        )
        return [str(blob.name) for blob in blobs]

    def _delete_object(self, name: str) -> bool:
        """Delete one object; False if it was already gone (someone else deleted it).

        A delete retried after its answer was lost also finds the object gone, so the count
        may fall short by such deletes; the blobs are gone either way."""
        try:
            self._bucket.blob(name).delete(retry=self._retry, timeout=self._timeout_s)
        except google_errors.NotFound:
            return False
        return True

    def _bucket_exists(self) -> bool:
        """False only when Cloud Storage says the bucket does not exist."""
        try:
            return bool(self._bucket.exists(retry=self._retry, timeout=self._timeout_s))
        except google_errors.Forbidden:
            return True  # credentials that may read objects but not buckets: assume it exists

    async def _run(self, action: str, call: Callable[..., T], *args: Any) -> T:
        """Run a synchronous client call in a worker thread; its failures as BackendError."""
        with self._google_errors(action):
            return await anyio.to_thread.run_sync(call, *args)

    @contextmanager
    def _google_errors(self, action: str) -> Iterator[None]:
        endpoint = str(self._client.api_endpoint)
        bucket = f"gs://{self.bucket}"
        try:
            yield
        except BurlaError:
            raise
        except google_errors.NotFound as error:
            raise BackendError(
                f"{action} failed: the bucket {bucket} does not exist at {endpoint}; create "
                f"it (gcloud storage buckets create {bucket}) or name an existing bucket"
            ) from error
        except (google_errors.Forbidden, google_errors.Unauthorized) as error:
            raise BackendError(
                f"{action} failed: the credentials in use may not do this in {bucket} "
                f"({error.message}); grant them roles/storage.objectAdmin on the bucket, or "
                "use other credentials"
            ) from error
        except google_errors.RetryError as error:
            raise BackendError(
                f"{action} failed: Cloud Storage at {endpoint} did not answer successfully "
                f"within {self._timeout_s} s ({error.cause!r}); check that it is reachable "
                "(and STORAGE_EMULATOR_HOST, when you use an emulator), then retry"
            ) from error
        except google_errors.GoogleAPICallError as error:
            raise BackendError(
                f"{action} failed: Cloud Storage at {endpoint} answered {error.code} "
                f"({error.message}) for {bucket}; check the bucket and retry"
            ) from error
        except GoogleAuthError as error:
            raise BackendError(
                f"{action} failed: no usable Google Cloud credentials ({error}); run "
                "`gcloud auth application-default login`, or set "
                "GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
            ) from error
        except DataCorruption as error:
            raise BackendError(
                f"{action} failed: the bytes did not match their checksum on the way "
                f"({error}); retry"
            ) from error
        except OSError as error:  # a connection failure that was not retried
            raise BackendError(
                f"{action} failed: could not talk to Cloud Storage at {endpoint} ({error}); "
                "check that it is reachable (and STORAGE_EMULATOR_HOST, when you use an "
                "emulator), then retry"
            ) from error


def _default_client(project: str | None) -> Any:
    """A client for the environment: STORAGE_EMULATOR_HOST's emulator, else Google Cloud
    with the application default credentials."""
    try:
        return Client(project=project)
    except GoogleAuthError as error:
        raise BackendError(
            f"cannot open Cloud Storage: no Google Cloud credentials ({error}); run "
            "`gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to "
            "a service account key file, or pass a client"
        ) from error
