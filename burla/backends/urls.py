"""Open a Store or BlobStore from the URL that services and workers are given."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from burla.core.clock import Clock, WallClock
from burla.core.errors import InvalidRequestError
from burla.core.protocols import BlobStore, Store


def open_store(url: str, clock: Clock | None = None) -> Store:
    """`sqlite:///path/to/store.db` or `redis://host:port/db?namespace=NAME`."""
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
    raise InvalidRequestError(
        f"no store for {url!r}; use sqlite:///PATH or redis://HOST:PORT/DB?namespace=NAME"
    )


def open_blobs(url: str, secret: bytes, clock: Clock | None = None) -> BlobStore:
    """`file:///path/to/directory` or `gs://BUCKET/NAMESPACE`."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        from burla.backends.local.blobs import DirectoryBlobStore

        return DirectoryBlobStore(parts.path, secret, clock or WallClock())
    if parts.scheme == "gs":
        from burla.backends.gcp.gcs_blobs import GcsBlobStore

        return GcsBlobStore(parts.netloc, namespace=parts.path.strip("/"))
    raise InvalidRequestError(
        f"no blob store for {url!r}; use file:///DIRECTORY or gs://BUCKET/NAMESPACE"
    )
