"""RestStandIn: the JSON REST server every Google API stand-in here is built on.

A stand-in subclasses it with a route table (Google's REST path templates, each with its
method id such as "services.batchEnable") and its state; this module does the rest the
way Google's front end does it for the REST transports of Google's client libraries:

- Bodies are read through the API's own protobuf message (from the client library), so
  an unknown field or a wrong type is refused with 400 INVALID_ARGUMENT "Invalid JSON
  payload received. ...", and replies are checked against the reply's message and written
  in proto3 JSON: camelCase names, default values left out, int64 as strings, and enums by
  name, or by number when `$alt=json;enum-encoding=int` asks for it (the Python clients do).
- Errors are `{"error": {"code", "message", "status", "details"}}`, the HTTP code following
  google.rpc.Code's mapping; a path no route serves gets Google's HTML 404 page, as a
  client pointed at the wrong API's endpoint does.
- Long-running operations (`Operations`) are done on their `polls_until_done`-th poll
  (default 1: the first GET of the operation finds it done); the change they make happens
  then, and a finished one carries `response` (with its `@type`) or `error` (a
  google.rpc.Status).

For tests it records every request (`requests`), answers the next calls with an error
Google documents as transient (`refuse_next`: 429 RESOURCE_EXHAUSTED, 500 INTERNAL,
503 UNAVAILABLE, ...) without acting on them, and makes the next long-running operation
fail (`fail_next_operation`). It does not model authentication (any or no credentials are
accepted), quotas, request deadlines, field masks on reads (`fields=`), or
`X-HTTP-Method-Override`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote

from google.protobuf import json_format
from google.protobuf.message import Message

Json = dict[str, Any]

STATUS_CODES: dict[str, tuple[int, int]] = {
    "CANCELLED": (1, 499),
    "UNKNOWN": (2, 500),
    "INVALID_ARGUMENT": (3, 400),
    "DEADLINE_EXCEEDED": (4, 504),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "PERMISSION_DENIED": (7, 403),
    "RESOURCE_EXHAUSTED": (8, 429),
    "FAILED_PRECONDITION": (9, 400),
    "ABORTED": (10, 409),
    "OUT_OF_RANGE": (11, 400),
    "UNIMPLEMENTED": (12, 501),
    "INTERNAL": (13, 500),
    "UNAVAILABLE": (14, 503),
    "DATA_LOSS": (15, 500),
    "UNAUTHENTICATED": (16, 401),
}
"""Canonical status -> (google.rpc.Code number, HTTP status), as google/rpc/code.proto maps them."""

_REFUSAL_MESSAGES = {
    "RESOURCE_EXHAUSTED": "Resource has been exhausted (e.g. check quota).",
    "INTERNAL": "Internal error encountered.",
    "UNAVAILABLE": "The service is currently unavailable.",
    "DEADLINE_EXCEEDED": "The request timed out. Please try again.",
    "ABORTED": "The operation was aborted.",
}
_NOT_FOUND_PAGE = (
    "<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n"
    "<title>Error 404 (Not Found)!!1</title>\n"
    "<p><b>404.</b> <ins>That\u2019s an error.</ins>\n"
    "<p>The requested URL <code>{path}</code> was not found on this server."
    "  <ins>That\u2019s all we know.</ins>\n"
)
_VARIABLE = re.compile(r"\{(\w+)\}")
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


class ApiError(Exception):
    """A Google API error: a canonical status, a message and google.rpc details."""

    def __init__(self, status: str, message: str, details: list[Json] | None = None) -> None:
        if status not in STATUS_CODES:
            raise ValueError(f"{status!r} is not a canonical status; use one of {STATUS_CODES}")
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.details = details or []

    @property
    def http_code(self) -> int:
        return STATUS_CODES[self.status][1]

    def body(self) -> Json:
        """The error as Google's REST front end writes it."""
        error: Json = {"code": self.http_code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = copy.deepcopy(self.details)
        return {"error": error}

    def rpc_status(self) -> Json:
        """The error as a google.rpc.Status, the way a failed operation carries it."""
        status: Json = {"code": STATUS_CODES[self.status][0], "message": self.message}
        if self.details:
            status["details"] = copy.deepcopy(self.details)
        return status


def error_info(reason: str, domain: str, metadata: Mapping[str, str] | None = None) -> Json:
    """A google.rpc.ErrorInfo detail: clients read its reason (e.g. SERVICE_DISABLED)."""
    info: Json = {"@type": ERROR_INFO, "reason": reason, "domain": domain}
    if metadata:
        info["metadata"] = dict(metadata)
    return info


def permission_denied(permission: str, resource: str, domain: str) -> ApiError:
    """What an API answers for a resource of a project the caller cannot see, or that does
    not exist: Google does not tell the two apart."""
    return ApiError(
        "PERMISSION_DENIED",
        f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).",
        [error_info("IAM_PERMISSION_DENIED", domain, {"permission": permission})],
    )


def service_disabled(title: str, service: str, project_number: int) -> ApiError:
    """What every method of an API answers while the API is not enabled on the project."""
    url = f"https://console.developers.google.com/apis/api/{service}/overview?project={project_number}"
    return ApiError(
        "PERMISSION_DENIED",
        f"{title} has not been used in project {project_number} before or it is disabled. "
        f"Enable it by visiting {url} then retry. If you enabled this API recently, wait a few "
        "minutes for the action to propagate to our systems and retry.",
        [
            error_info(
                "SERVICE_DISABLED",
                "googleapis.com",
                {
                    "service": service,
                    "consumer": f"projects/{project_number}",
                    "activationUrl": url,
                },
            )
        ],
    )


def timestamp() -> str:
    """Now, as Google writes a google.protobuf.Timestamp in JSON (RFC 3339, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def page_of(
    items: list[Json], query: Mapping[str, str], *, default_size: int, max_size: int
) -> tuple[list[Json], str | None]:
    """One page of a list and the token of the next one. As AIP-158 asks, a pageSize above
    the maximum is lowered to it; tokens are opaque and only this stand-in's own are valid."""
    try:
        size = int(query.get("pageSize") or 0)
    except ValueError:
        raise ApiError("INVALID_ARGUMENT", "pageSize must be an integer.") from None
    if size < 0:
        raise ApiError("INVALID_ARGUMENT", "pageSize must not be negative.")
    size = min(size or default_size, max_size)
    token = query.get("pageToken", "")
    try:
        offset = (
            int(base64.urlsafe_b64decode(token).decode().removeprefix("offset:")) if token else 0
        )
    except ValueError:
        raise ApiError("INVALID_ARGUMENT", f"Invalid page token: {token!r}.") from None
    if offset < 0:
        raise ApiError("INVALID_ARGUMENT", f"Invalid page token: {token!r}.")
    end = offset + size
    following = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode()
    return items[offset:end], following if end < len(items) else None


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it: the path's variables, unquoted; the query; and
    the body, parsed through the route's message and written back in canonical JSON."""

    params: dict[str, str]
    query: dict[str, str]
    body: Json


Handler = Callable[[Call], Json]


@dataclass(frozen=True)
class Route:
    """A method of the API: HTTP method and Google's path template, e.g.
    `/v1/projects/{project}/services:batchEnable`, where each {variable} is one path
    segment; `reply` and `body` are the protobuf messages of its reply and body."""

    method: str
    template: str
    method_id: str
    handler: Handler
    reply: type[Message]
    body: type[Message] | None = None
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        parts = _VARIABLE.split(self.template)
        regex = "".join(
            f"(?P<{part}>[^/:]+)" if index % 2 else re.escape(part)
            for index, part in enumerate(parts)
        )
        object.__setattr__(self, "pattern", re.compile(regex))


@dataclass(frozen=True)
class RecordedRequest:
    """A request as it arrived; `method_id` is the route's (None when no route served it)."""

    method: str
    path: str
    query: dict[str, str]
    body: Json | None
    method_id: str | None


@dataclass
class _Operation:
    resource: Json
    finish: Callable[[], Json]
    failure: ApiError | None = None
    polls: int = 0


class Operations:
    """The long-running operations of one stand-in (its lock held by every caller)."""

    def __init__(self) -> None:
        self.polls_until_done = 1
        """The poll of an operation on which it is done: 0 makes it done when it starts."""
        self._operations: dict[str, _Operation] = {}
        self._failures: list[ApiError] = []

    def start(
        self, name: str, metadata: Json, finish: Callable[[], Json], *, at_once: bool = False
    ) -> Json:
        """A new operation; `finish` makes its change and returns its response (or raises
        ApiError, which becomes the operation's error). `at_once` finishes it now, as an API
        does when there is nothing to wait for."""
        operation = _Operation({"name": name, "metadata": metadata, "done": False}, finish)
        if not at_once and self._failures:
            operation.failure = self._failures.pop(0)
        self._operations[name] = operation
        if at_once or self.polls_until_done == 0:
            self._complete(operation)
        return copy.deepcopy(operation.resource)

    def poll(self, name: str) -> Json:
        operation = self._operations.get(name)
        if operation is None:
            raise ApiError("NOT_FOUND", f"Operation {name} not found.")
        operation.polls += 1
        if not operation.resource["done"] and operation.polls >= self.polls_until_done:
            self._complete(operation)
        return copy.deepcopy(operation.resource)

    def fail_next(self, error: ApiError) -> None:
        self._failures.append(error)

    def clear(self) -> None:
        self._operations.clear()
        self._failures.clear()
        self.polls_until_done = 1

    def _complete(self, operation: _Operation) -> None:
        if operation.failure is not None:
            operation.resource["error"] = operation.failure.rpc_status()
        else:
            try:
                operation.resource["response"] = operation.finish()
            except ApiError as error:
                operation.resource["error"] = error.rpc_status()
        operation.resource["done"] = True


class RestStandIn:
    """A stand-in's server, requests, injected failures and operations (see module doc).

    `projects` maps the id of each project that exists to its number; a project may be
    named by either in a path, as Google allows. Subclasses give `_route_table` and
    `_forget` (drop their state), and hold `self._lock` whenever they touch their state
    outside a handler (handlers run with it held).
    """

    service_name: ClassVar[str]
    """The API's service, e.g. "serviceusage.googleapis.com"."""

    def __init__(self, projects: Mapping[str, int]) -> None:
        self.projects = dict(projects)
        self.operations = Operations()
        self.requests: list[RecordedRequest] = []
        """Every request received, in order."""
        self._refusals: list[tuple[str | None, ApiError]] = []
        self._lock = threading.RLock()
        self._routes = self._route_table()
        self._server: _Server | None = None
        self._serving: threading.Thread | None = None

    def _route_table(self) -> list[Route]:
        raise NotImplementedError

    def _forget(self) -> None:
        raise NotImplementedError

    # Running ---------------------------------------------------------------------------

    def start(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stand_in = self
        self._serving = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._serving.start()

    @property
    def port(self) -> int:
        assert self._server is not None, "start the stand-in first"
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """What a client takes as `client_options={"api_endpoint": ...}`."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._serving is not None:
            self._serving.join()

    def reset(self) -> None:
        """Back to the state it started in: no requests, failures or operations."""
        with self._lock:
            self._forget()
            self.operations.clear()
            self._refusals.clear()
            self.requests.clear()

    # Test controls ---------------------------------------------------------------------

    def refuse_next(
        self,
        status: str = "UNAVAILABLE",
        *,
        count: int = 1,
        message: str | None = None,
        method_id: str | None = None,
    ) -> None:
        """Answer the next `count` calls (of `method_id` only, if given) with this error,
        doing nothing else. A RESOURCE_EXHAUSTED refusal carries the ErrorInfo
        RATE_LIMIT_EXCEEDED, as Google's rate limiting does."""
        text = message or _REFUSAL_MESSAGES.get(status, f"{status.lower()} (injected)")
        details = []
        if status == "RESOURCE_EXHAUSTED":
            details = [error_info("RATE_LIMIT_EXCEEDED", "googleapis.com", self._quota_metadata())]
        with self._lock:
            self._refusals += [(method_id, ApiError(status, text, details))] * count

    def fail_next_operation(self, status: str, message: str) -> None:
        """Make the next long-running operation end with this error, changing nothing."""
        with self._lock:
            self.operations.fail_next(ApiError(status, message))

    def _quota_metadata(self) -> dict[str, str]:
        return {"service": self.service_name, "quota_limit": "DefaultRequestsPerMinutePerProject"}

    # Projects --------------------------------------------------------------------------

    def _project_id(self, reference: str) -> str | None:
        """The id of the project a path names by id or number, or None if it does not exist."""
        if reference in self.projects:
            return reference
        return next((id_ for id_, n in self.projects.items() if str(n) == reference), None)

    # Serving ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, body: bytes) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) of the answer to one request."""
        path, _, query_string = target.partition("?")
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        try:
            sent = json.loads(body) if body.strip() else None
        except ValueError:
            sent = None
            malformed = True
        else:
            malformed = False
        route, params = self._match(method, path)
        with self._lock:
            method_id = route.method_id if route else None
            self.requests.append(RecordedRequest(method, path, query, sent, method_id))
            if route is None:
                page = _NOT_FOUND_PAGE.format(path=path).encode()
                return 404, "text/html; charset=UTF-8", page
            try:
                self._take_refusal(route)
                if malformed:
                    raise ApiError("INVALID_ARGUMENT", "Invalid JSON payload received.")
                reply = route.handler(Call(params, query, _decode(route.body, sent)))
                ints = "enum-encoding=int" in query.get("$alt", "")
                data = _encode(route.reply, reply, ints)
            except ApiError as error:
                return error.http_code, "application/json; charset=UTF-8", _dump(error.body())
        return 200, "application/json; charset=UTF-8", _dump(data)

    def _match(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for route in self._routes:
            found = route.pattern.fullmatch(path)
            if found and route.method == method:
                return route, {name: unquote(value) for name, value in found.groupdict().items()}
        return None, {}

    def _take_refusal(self, route: Route) -> None:
        for index, (method_id, error) in enumerate(self._refusals):
            if method_id in (None, route.method_id):
                del self._refusals[index]
                raise error


def _decode(message: type[Message] | None, sent: Json | None) -> Json:
    if message is None or sent is None:
        return {}
    try:
        parsed = json_format.ParseDict(sent, message())
    except json_format.ParseError as error:
        raise ApiError("INVALID_ARGUMENT", f"Invalid JSON payload received. {error}") from None
    canonical: Json = json_format.MessageToDict(parsed)
    return canonical


def _encode(message: type[Message], reply: Json, ints: bool) -> Json:
    try:
        parsed = json_format.ParseDict(reply, message())
    except json_format.ParseError as error:
        # A reply the API's own schema refuses is a bug of the stand-in, not the caller's.
        raise ApiError("INTERNAL", f"stand-in bug: its reply does not parse: {error}") from None
    written: Json = json_format.MessageToDict(parsed, use_integers_for_enums=ints)
    return written


def _dump(data: Json) -> bytes:
    return json.dumps(data).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stand_in: RestStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length) if length else b""
        status, content_type, data = self.server.stand_in.handle(self.command, self.path, body)
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `RestStandIn.requests` instead."""
