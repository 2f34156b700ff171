"""FastAPI's own refusals, answered as burla's errors are: a body that is not JSON, a value of
the wrong type or out of range, a method a path does not take. JSON with the error's type
and a message that says what was wrong (burla.services.errors has the rest)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

_NAMES = {404: "NotFoundError", 409: "ConflictError", 413: "PayloadTooLargeError"}
SHOWN_PROBLEMS = 3


def refusal(method: str, path: str, problems: Sequence[Mapping[str, Any]]) -> str:
    """What was wrong with a request, from its validation errors (pydantic's, each with
    the `loc` of the value and a `msg`)."""
    shown = [
        f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
        for problem in problems[:SHOWN_PROBLEMS]
    ]
    return f"{method} {path} was refused: {'; '.join(shown)}"


def install(app: FastAPI) -> None:
    """Answer FastAPI's own refusals as burla's errors. (FastAPI is loaded here, not above:
    main_service serves its first routes before FastAPI loads, with `refusal` alone.)"""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    async def invalid(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        message = refusal(request.method, request.url.path, error.errors())
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
