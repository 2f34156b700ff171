"""main_service's OpenAPI schema: the errors every route may answer with, and the routes
served as plain ASGI in front of FastAPI (front, job_routes), described without routing
them through the framework."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from burla.services.main_service.front import Booted
from burla.services.main_service.job_routes import FRAMES, MAX_WAIT_S


class ErrorBody(BaseModel):
    error: str
    """The BurlaError's type: InvalidRequestError, NotFoundError, PayloadTooLargeError..."""
    message: str
    """What happened and what to do."""


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The request cannot be carried out as asked"},
    401: {"model": ErrorBody, "description": "No valid token"},
    404: {"model": ErrorBody, "description": "No such job or node"},
    409: {"model": ErrorBody, "description": "It conflicts with what is there"},
    413: {"model": ErrorBody, "description": "The body is over main_service's size limit"},
}
"""How main_service answers a BurlaError (burla.services.errors), on every route."""

_ERROR = {"$ref": "#/components/schemas/ErrorBody"}
_FRAMES_BODY = {FRAMES: {"schema": {"type": "string", "format": "binary"}}}
FRAMES_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {"description": "Frames (burla.core.wire)", "content": _FRAMES_BODY}
}
"""The answer of a FastAPI route that answers with frames."""
PICKLE_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Pickled bytes, as the client sent them",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
"""The answer of a FastAPI route that answers with a job's pickled function or input."""


_NODES_ONLY = "Only the cluster's own nodes may do this"


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": ERROR_RESPONSES[status]["description"] if status != 403 else _NODES_ONLY,
            "content": {"application/json": {"schema": _ERROR}},
        }
        for status in statuses
    }


def _number(name: str, description: str, kind: str = "number") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind},
    }


JOB_PATHS: dict[str, Any] = {
    "/jobs": {
        "post": {
            "summary": "Start a job",
            "description": (
                "The body is frames (burla.core.wire): the job's frame (its id and spec, "
                "and the pickled function as payload), then one frame per input. Answers "
                "with the job's events so far, as frames, once it is done or `wait` "
                f"seconds (at most {MAX_WAIT_S:g}) have passed."
            ),
            "operationId": "submit_job",
            "parameters": [_number("wait", "Seconds to wait for the job to finish")],
            "requestBody": {"required": True, "content": _FRAMES_BODY},
            "responses": {
                "200": {"description": "The job's events so far", "content": _FRAMES_BODY},
                **_errors(400, 401, 409, 413),
            },
        }
    },
    "/jobs/{job_id}/events": {
        "get": {
            "summary": "A job's results and printed lines",
            "description": (
                "Events after position `after`, as frames; waits up to `wait` seconds "
                f"(at most {MAX_WAIT_S:g}) for any."
            ),
            "operationId": "job_events",
            "parameters": [
                {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}},
                _number("after", "Stream position to read after", "integer"),
                _number("wait", "Seconds to wait for news"),
            ],
            "responses": {
                "200": {"description": "The events, as frames", "content": _FRAMES_BODY},
                **_errors(400, 401, 404),
            },
        }
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


NODE_PATHS: dict[str, Any] = {
    "/health": {
        "get": {
            "summary": "Whether main_service serves",
            "operationId": "health",
            "responses": {
                "200": {
                    "description": "It serves",
                    "content": _json(
                        {
                            "type": "object",
                            "properties": {"ok": {"type": "boolean"}},
                            "required": ["ok"],
                        }
                    ),
                },
                **_errors(401),
            },
        }
    },
    "/nodes/{node_id}/booted": {
        "post": {
            "summary": "A node says where it listens",
            "description": (
                "A node main_service started has booted: main_service connects to it at "
                "`address`, unless it runs another burla (`build`)."
            ),
            "operationId": "node_booted",
            "parameters": [
                {"name": "node_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {
                "required": True,
                "content": _json({"$ref": "#/components/schemas/Booted"}),
            },
            "responses": {
                "200": {
                    "description": "The node is taken on",
                    "content": _json(
                        {
                            "type": "object",
                            "properties": {"node_id": {"type": "string"}},
                            "required": ["node_id"],
                        }
                    ),
                },
                **_errors(400, 401, 403, 404, 413),
            },
        }
    },
}


def describe_plain_routes(app: FastAPI) -> None:
    """Add the routes served in front of FastAPI to the app's schema, which FastAPI builds
    once, on first use."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path, operations in {**JOB_PATHS, **NODE_PATHS}.items():
                schema["paths"].setdefault(path, {}).update(operations)
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Booted"] = Booted.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
