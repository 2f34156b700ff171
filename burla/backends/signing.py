"""Signed URLs for blob stores that sign their own: an HMAC over key, method and expiry."""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal
from urllib.parse import parse_qs

from burla.core.clock import Clock
from burla.core.errors import InvalidRequestError, SignedUrlError

Method = Literal["GET", "PUT"]


class UrlSigner:
    """Makes and checks the query string (`method=&expires=&sig=`) of a signed URL."""

    def __init__(self, secret: bytes, clock: Clock) -> None:
        self._secret = secret
        self._clock = clock

    def query(self, key: str, method: Method, expires_s: float) -> str:
        if method not in ("GET", "PUT"):
            raise InvalidRequestError(f"signed URLs are for GET or PUT, not {method!r}")
        if not expires_s > 0:
            raise InvalidRequestError(f"expires_s must be more than 0, not {expires_s}")
        expires = repr(self._clock.now() + expires_s)
        return f"method={method}&expires={expires}&sig={self._sign(key, method, expires)}"

    def verify(self, key: str, query: str, method: Method) -> None:
        """Raise SignedUrlError unless `query` grants `method` on `key` now."""
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
        expected = self._sign(key, url_method, expires)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise SignedUrlError(
                f"signed URL for {key!r} does not match its signature: it was changed after "
                "signing or signed with another secret; ask for a new signed URL"
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

    def _sign(self, key: str, method: str, expires: str) -> str:
        message = f"{method}\n{expires}\n{key}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
