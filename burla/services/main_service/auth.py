"""Who is asking: every request's token is checked before any routing, and its user is
left in the request's scope for the routes to decide what that user may see and do."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from burla.core.errors import AuthError, NotFoundError
from burla.services.cluster_keys import JOB_TOKEN_PREFIX
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.retention import REMOVED
from burla.services.main_service.service import MainService
from burla.services.main_service.users import ADMIN, NODE, Users, may_see, owner_of
from burla.services.store_keys import job_key

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


# The dependencies are coroutines: FastAPI runs a plain function's in a worker thread,
# a hop per request (and, in the simulator, a wait its virtual clock cannot see).
async def user_of(request: Request) -> str:
    """A FastAPI dependency: the user the request came from ("" on a public path)."""
    return _user(request)


async def require_admin(request: Request) -> str:
    """A FastAPI dependency: only the cluster's admin passes."""
    user = _user(request)
    if user != ADMIN or VIA_JOB in request.scope:
        who = f"a job's code ({request.scope[VIA_JOB]})" if VIA_JOB in request.scope else user
        raise AuthError(
            f"only the cluster's admin may do this, not {who or 'a visitor'}; use the "
            "cluster's own token (a local cluster's is in its cluster.json)"
        )
    return user


async def require_node(request: Request) -> str:
    """A FastAPI dependency: only the cluster's nodes (or its admin) pass."""
    user = _user(request)
    if user not in (NODE, ADMIN) or VIA_JOB in request.scope:
        raise AuthError("only the cluster's own nodes may do this: it needs the node secret")
    return user


def _user(request: Request) -> str:
    return request.scope.get(USER) or ""


User = Annotated[str, Depends(user_of)]
Admin = Annotated[str, Depends(require_admin)]
NodeOnly = Annotated[str, Depends(require_node)]


def visible_run(service: MainService, job_id: str, user: str) -> JobRun | None:
    """The job main_service holds, if `user` may see it: another user's job is answered
    as if there were none, so that its id tells nothing."""
    run = service.jobs.get(job_id)
    return run if run is not None and may_see(user, run.owner) else None


async def visible_record(service: MainService, job_id: str, user: str) -> dict[str, Any] | None:
    """The job's record in the Store, if there is one and `user` may see it."""
    doc = await service.store.get(job_key(job_id))
    if doc is None or not may_see(user, owner_of(doc.data)):
        return None
    if doc.data.get(REMOVED):
        raise NotFoundError(
            f"job {job_id} finished long ago and was removed, with its results, to keep "
            "finished jobs' results within the cluster's BURLA_RESULTS_MAX_GB"
        )
    return doc.data
