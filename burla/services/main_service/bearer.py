"""Who is asking: every request's token is checked before any routing, and its user is
left in the request's scope for the routes to decide what that user may see and do.

Plain ASGI, with no web framework: main_service serves its first job before FastAPI loads
(burla.services.main_service.front)."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from burla.services.cluster_keys import JOB_TOKEN_PREFIX
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.users import NODE, Users

USER = "burla.user"
"""The scope's key of the user a request came from."""
VIA_JOB = "burla.via_job"
"""The scope's key of the job whose token a request came with (code running in that job)."""
_BEARER = b"Bearer "


class BearerAuth:
    """Refuses every HTTP request without a valid token, before any routing: a plain ASGI
    layer costs a warm call far less than a FastAPI dependency on every route, and a valid
    token costs one hash and one dict lookup (users.Users).

    A browser cannot put a header on every request (EventSource, links), so with `cookie`
    the token may come in that cookie instead; paths under `public` (a login page and its
    static files, which hold no cluster data) need no token. Both are looked at only when
    the header is missing or wrong, so the clients' own requests cost no more."""

    def __init__(
        self,
        app: ASGIApp,
        users: Users,
        hint: str,
        job_of: Callable[[str], JobRun | None] = lambda token: None,
        cookie: str | None = None,
        public: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self._users = users
        self._job_of = job_of
        self._cookie = f"{cookie}=".encode() if cookie else None
        self._public = public
        body = {"error": "AuthError", "message": f"a valid token is needed; {hint}"}
        self._refusal = json.dumps(body).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            user = self._users.user_of(given[len(_BEARER) :]) if given[:7] == _BEARER else None
            if user is None:
                user = await self._other_user(scope, given)
            if user == NODE and not scope["path"].startswith("/nodes/"):
                user = None  # the node secret is for the nodes' own routes only
            if user is None and scope["path"] not in self._public:
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(self._refusal)).encode()),
                ]
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": self._refusal})
                return
            scope[USER] = user
        await self.app(scope, receive, send)

    async def _other_user(self, scope: Scope, given: bytes) -> str | None:
        """The owner of a running job whose token this is, the user of a token made since
        the tokens were last read, or the user of a browser's cookie."""
        if given.startswith(_BEARER + JOB_TOKEN_PREFIX.encode()):
            run = self._job_of(given[len(_BEARER) :].decode(errors="replace"))
            if run is None:
                return None
            scope[VIA_JOB] = run.spec.job_id
            return run.owner
        if not self._users.loaded:
            await self._users.load()
            if given[:7] == _BEARER and (user := self._users.user_of(given[7:])):
                return user
        if self._cookie is None:
            return None
        for name, value in scope["headers"]:
            if name != b"cookie":
                continue
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(self._cookie):
                    return self._users.user_of(part[len(self._cookie) :])
        return None
