"""How the services answer with burla's errors: JSON with the error's type and message."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from burla.core.errors import (
    BurlaError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
)


class Unauthorized(HTTPException):
    def __init__(self, message: str) -> None:
        super().__init__(status_code=401, detail={"error": "Unauthorized", "message": message})


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
