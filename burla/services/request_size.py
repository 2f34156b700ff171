"""Refuses HTTP requests whose body is over the limit (413), before any of it is kept.

A body that says its length is refused at once, unread; one sent in chunks is counted as it
is read and refused once it passes the limit: whoever reads it is told the client went away,
so nothing is written. POST /jobs, which carries a whole job, has a limit of its own.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from burla.core.errors import PayloadTooLargeError
from burla.core.limits import JOB_REQUEST_ENV, REQUEST_ENV, RequestLimits


class RequestSizeLimit:
    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self._limit_of(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, too_large(declared, limit, setting), limit)
            return
        await _Counted(limit, setting, receive, send).run(self.app, scope)

    def _limit_of(self, scope: Scope) -> tuple[int, str]:
        if scope["method"] == "POST" and scope["path"] == "/jobs":
            return self.limits.job_request, JOB_REQUEST_ENV
        return self.limits.request, REQUEST_ENV


def too_large(size: int, limit: int, setting: str) -> PayloadTooLargeError:
    what = "a job's request" if setting == JOB_REQUEST_ENV else "a request's body"
    advice = (
        "burla's client uploads inputs to the blob store until its job fits: split the "
        "inputs over several calls, or raise the limit where main_service runs"
        if setting == JOB_REQUEST_ENV
        else "send less, or raise the limit where main_service runs"
    )
    return PayloadTooLargeError(
        f"{what} of {size} bytes is over main_service's limit of {limit} bytes "
        f"({setting}); nothing was written. {advice}"
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _Counted:
    """One request whose body is counted as the app reads it. Once it passes the limit, the
    client is answered 413, the app is told the client went away, and whatever the app
    answers instead goes nowhere."""

    def __init__(self, limit: int, setting: str, receive: Receive, send: Send) -> None:
        self._limit, self._setting = limit, setting
        self._receive, self._send = receive, send
        self._seen = 0
        self._started = False
        self._refused = False

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        await app(scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self._refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        self._seen += len(message.get("body", b""))
        if self._seen > self._limit and not self._started:
            self._refused = True
            await _refuse(
                self._send, too_large(self._seen, self._limit, self._setting), self._limit
            )
            return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self._refused:
            return
        self._started = True
        await self._send(message)


async def _refuse(send: Send, error: PayloadTooLargeError, limit: int) -> None:
    """413, with the limit in bytes: burla's client fits its job to it and sends it again."""
    body: dict[str, Any] = {"error": type(error).__name__, "message": str(error), "limit": limit}
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": data})
