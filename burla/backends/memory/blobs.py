"""MemoryBlobStore: bytes by key in memory, with signed URLs that are really checked."""

from __future__ import annotations

import secrets
from typing import Literal
from urllib.parse import quote, unquote

from burla.backends.signing import UrlSigner
from burla.core.clock import Clock, WallClock
from burla.core.errors import InvalidRequestError, NotFoundError, SignedUrlError

_SCHEME = "memory://"


class MemoryBlobStore:
    """The BlobStore protocol in memory.

    Signed URLs look like `memory://<key>?method=GET&expires=<t>&sig=<hmac>`, signed with a
    secret that belongs to this store alone; `get_signed` and `put_signed` play the part
    of the HTTP server that honours them.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else WallClock()
        self._blobs: dict[str, bytes] = {}
        self._signer = UrlSigner(secrets.token_bytes(32), self._clock)

    async def put(self, key: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidRequestError(
                f"blob {key!r}: data is a {type(data).__name__}, not bytes; serialize it first"
            )
        self._blobs[key] = bytes(data)

    async def get(self, key: str) -> bytes:
        try:
            return self._blobs[key]
        except KeyError:
            raise NotFoundError(
                f"there is no blob {key!r}: check the key, or put the blob before reading it"
            ) from None

    async def list(self, prefix: str) -> list[str]:
        return sorted(key for key in self._blobs if key.startswith(prefix))

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self._blobs if key.startswith(prefix)]
        for key in doomed:
            del self._blobs[key]
        return len(doomed)

    async def signed_url(self, key: str, *, method: Literal["GET", "PUT"], expires_s: float) -> str:
        return f"{_SCHEME}{quote(key, safe='/')}?{self._signer.query(key, method, expires_s)}"

    async def get_signed(self, url: str) -> bytes:
        """Do what an HTTP GET of a signed URL does: check the URL, then return the blob."""
        key = self._check(url, "GET")
        return await self.get(key)

    async def put_signed(self, url: str, data: bytes) -> None:
        """Do what an HTTP PUT to a signed URL does: check the URL, then store the blob."""
        key = self._check(url, "PUT")
        await self.put(key, data)

    def _check(self, url: str, method: Literal["GET", "PUT"]) -> str:
        """The key a signed URL grants `method` on; SignedUrlError if it grants nothing."""
        if not url.startswith(_SCHEME):
            raise SignedUrlError(f"{url!r} is not a memory:// signed URL from a MemoryBlobStore")
        path, _, query = url[len(_SCHEME) :].partition("?")
        key = unquote(path)
        self._signer.verify(key, query, method)
        return key
