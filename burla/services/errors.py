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
)


class BearerAuth:
    """Refuses every HTTP request that lacks the bearer token, before any routing: a plain
    ASGI layer costs a warm call far less than a FastAPI dependency on every route."""

    def __init__(self, app: ASGIApp, token: str, hint: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        body = {"error": "Unauthorized", "message": f"a valid token is needed; {hint}"}
        self._refusal = json.dumps(body).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self._expected):
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._refusal)).encode()),
                ]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": self._refusal})
                return
        await self.app(scope, receive, send)


def status_of(error: BurlaError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, ConflictError):
        return 409
    if isinstance(error, InvalidRequestError):
        return 400
    return 500


def install(app: FastAPI) -> None:
    async def handle(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, BurlaError)
        body = {"error": type(error).__name__, "message": str(error)}
        return JSONResponse(body, status_code=status_of(error))

    app.add_exception_handler(BurlaError, handle)
