"""How the services answer with burla's errors: JSON with the error's type and message."""

from __future__ import annotations

import hmac
import json

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from burla.core.errors import (
    BurlaError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
)


class BearerAuth:
    """Refuses every HTTP request that lacks the bearer token, before any routing: a plain
    ASGI layer costs a warm call far less than a FastAPI dependency on every route.

    A browser cannot put a header on every request (EventSource, links), so with `cookie`
    the token may come in that cookie instead; paths under `public` (a login page and its
    static files, which hold no cluster data) need no token. Both are looked at only when
    the header is missing or wrong, so the clients' own requests cost no more."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        hint: str,
        cookie: str | None = None,
        public: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._cookie = f"{cookie}=".encode() if cookie else None
        self._token = token.encode()
        self._public = public
        body = {"error": "Unauthorized", "message": f"a valid token is needed; {hint}"}
        self._refusal = json.dumps(body).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self._expected) and not self._let_in(scope):
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._refusal)).encode()),
                ]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": self._refusal})
                return
        await self.app(scope, receive, send)

    def _let_in(self, scope: Scope) -> bool:
        """A browser's request: a public path, or the token in the cookie."""
        if scope["path"] in self._public:
            return True
        if self._cookie is None:
            return False
        for name, value in scope["headers"]:
            if name != b"cookie":
                continue
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(self._cookie):
                    return hmac.compare_digest(part[len(self._cookie) :], self._token)
        return False


def status_of(error: BurlaError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, PayloadTooLargeError):
        return 413
    if isinstance(error, InvalidRequestError):
        return 400
    return 500


def install(app: FastAPI) -> None:
    async def handle(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, BurlaError)
        body = {"error": type(error).__name__, "message": str(error)}
        return JSONResponse(body, status_code=status_of(error))

    app.add_exception_handler(BurlaError, handle)
