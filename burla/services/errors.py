"""How the services answer with burla's errors: JSON with the error's type and message."""

from __future__ import annotations

from typing import TYPE_CHECKING

from burla.core.errors import (
    AuthError,
    BurlaError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
)

if TYPE_CHECKING:
    from fastapi import FastAPI, Request


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
    """Answer BurlaErrors the routes of `app` raise. (FastAPI is loaded here, not above:
    the routes main_service serves before FastAPI loads use status_of alone.)"""
    from fastapi.responses import JSONResponse

    async def handle(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, BurlaError)
        body = {"error": type(error).__name__, "message": str(error)}
        return JSONResponse(body, status_code=status_of(error))

    app.add_exception_handler(BurlaError, handle)
