"""MemoryBlobStore: bytes by key in memory, with signed URLs that are really checked."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal
from urllib.parse import parse_qs, quote, unquote

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
        self._secret = secrets.token_bytes(32)

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
        if method not in ("GET", "PUT"):
            raise InvalidRequestError(f"signed URLs are for GET or PUT, not {method!r}")
        if expires_s <= 0:
            raise InvalidRequestError(f"expires_s must be more than 0, not {expires_s}")
        expires = repr(self._clock.now() + expires_s)
        signature = self._sign(key, method, expires)
        return f"{_SCHEME}{quote(key, safe='/')}?method={method}&expires={expires}&sig={signature}"

    async def get_signed(self, url: str) -> bytes:
        """Do what an HTTP GET of a signed URL does: check the URL, then return the blob."""
        key = self._check(url, "GET")
        return await self.get(key)

    async def put_signed(self, url: str, data: bytes) -> None:
        """Do what an HTTP PUT to a signed URL does: check the URL, then store the blob."""
        key = self._check(url, "PUT")
        await self.put(key, data)

    def _sign(self, key: str, method: str, expires: str) -> str:
        message = f"{method}\n{expires}\n{key}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _check(self, url: str, method: Literal["GET", "PUT"]) -> str:
        """The key a signed URL grants `method` on; SignedUrlError if it grants nothing."""
        if not url.startswith(_SCHEME):
            raise SignedUrlError(f"{url!r} is not a memory:// signed URL from a MemoryBlobStore")
        path, _, query = url[len(_SCHEME) :].partition("?")
        key = unquote(path)
        params = parse_qs(query, keep_blank_values=True)
        try:
            [url_method] = params["method"]
            [expires] = params["expires"]
            [signature] = params["sig"]
            deadline = float(expires)
        except (KeyError, ValueError):
            raise SignedUrlError(
                f"signed URL for {key!r} is malformed (it needs one method, expires and sig); "
                "use the URL exactly as signed_url returned it"
            ) from None
        if not hmac.compare_digest(
            signature.encode(), self._sign(key, url_method, expires).encode()
        ):
            raise SignedUrlError(
                f"signed URL for {key!r} does not match its signature: it was changed after "
                "signing or signed by another store; ask for a new signed URL"
            )
        if url_method != method:
            raise SignedUrlError(
                f"signed URL for {key!r} allows {url_method}, not {method}; "
                f"ask for a signed URL with method={method!r}"
            )
        now = self._clock.now()
        if now >= deadline:
            raise SignedUrlError(
                f"signed URL for {key!r} expired at {deadline} and it is now {now}; "
                "ask for a new signed URL"
            )
        return key
