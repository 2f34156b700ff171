"""FastAPI's own refusals, answered as burla's errors are: a body that is not JSON, a value of
the wrong type or out of range, a method a path does not take. JSON with the error's type
and a message that says what was wrong (burla.services.errors has the rest)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

_NAMES = {404: "NotFoundError", 409: "ConflictError", 413: "PayloadTooLargeError"}
SHOWN_PROBLEMS = 3


def install(app: FastAPI) -> None:
    async def invalid(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        problems = [
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()[:SHOWN_PROBLEMS]
        ]
        message = f"{request.method} {request.url.path} was refused: {'; '.join(problems)}"
        return JSONResponse({"error": "InvalidRequestError", "message": message}, 400)

    async def refused(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        name = _NAMES.get(error.status_code, "InvalidRequestError")
        message = f"{request.method} {request.url.path}: {error.detail}"
        return JSONResponse(
            {"error": name, "message": message}, error.status_code, headers=error.headers
        )

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, refused)
