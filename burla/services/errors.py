"""How the services answer with burla's errors: JSON with the error's type and message."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from burla.core.errors import (
    AuthError,
    BurlaError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
)


def status_of(error: BurlaError) -> int:
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(error, AuthError):
        return 403
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
