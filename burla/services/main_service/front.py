"""main_service's front door: the token, the size limit and the routes a cold start needs,
as plain ASGI, in front of the FastAPI app that serves every other route.

A cold start needs four routes: the client's GET /health (is the cluster up?), the node's
POST /nodes/{id}/booted and the job's two (job_routes). None of them needs FastAPI, whose
import and route building cost main_service about a third of a second of CPU that the
node booting beside it needs more. So main_service serves these four first and builds the
FastAPI app behind them (`LaterApp`) once the cluster has been quiet for a while: its nodes
booted and no job for QUIET_S (a cold start's first job answered), so that the build takes
no CPU from a job. A request for another route that comes sooner builds it: it waits for
the app, then gets the answer it would have got anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import anyio.to_thread
from pydantic import BaseModel, Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from burla.core.errors import AuthError, InvalidRequestError, NotFoundError, VersionMismatchError
from burla.core.limits import RequestLimits
from burla.core.models import NodeState
from burla.release import build_id, build_mismatch
from burla.services.main_service.bearer import USER, VIA_JOB, BearerAuth
from burla.services.main_service.dashboard_paths import COOKIE, PUBLIC_PATHS
from burla.services.main_service.job_routes import JobRoutes, outcome, read_body, send_answer
from burla.services.main_service.service import MainService
from burla.services.main_service.users import ADMIN, NODE, Users
from burla.services.request_errors import refusal
from burla.services.request_size import RequestSizeLimit

JSON = "application/json"
TOKEN_HINT = (
    "a local cluster's is in its cluster.json; a cloud cluster's is printed by its "
    "main_service or kept in its --token-file"
)
QUIET_S = 1.0
"""How long the cluster is quiet (no node booting, no job running or just ended) before
the FastAPI app is built unasked."""
QUIET_POLL_S = 0.1


class Booted(BaseModel):
    address: str = Field(pattern=r"^[A-Za-z0-9.:\[\]-]+:[0-9]{1,5}$", max_length=300)
    """Where its node_service listens: host:port."""
    build: str = Field(default="", max_length=64)
    """The build id of the node's burla (burla.release); empty from a burla too old to
    send one."""


def front_door(service: MainService, users: Users, limits: RequestLimits, app: ASGIApp) -> ASGIApp:
    """`app` (the FastAPI app, or a LaterApp of it) behind the token check, then the size
    limit, then the routes served as plain ASGI."""
    routes = JobRoutes(NodeRoutes(app, service), service=service)
    return BearerAuth(
        RequestSizeLimit(routes, limits=limits),
        users=users,
        hint=TOKEN_HINT,
        job_of=service.job_of_token,
        cookie=COOKIE,
        public=PUBLIC_PATHS,
    )


class NodeRoutes:
    """GET /health and a node's POST /nodes/{node_id}/booted; other requests go to `app`."""

    def __init__(self, app: ASGIApp, service: MainService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "GET" and path == "/health":
                await send_answer(send, 200, JSON, b'{"ok":true}')
                return
            if method == "POST" and path.startswith("/nodes/") and path.endswith("/booted"):
                node_id = path[len("/nodes/") : -len("/booted")]
                if node_id and "/" not in node_id:
                    answer = await outcome(self._booted(scope, receive, node_id), JSON)
                    await send_answer(send, *answer)
                    return
        await self.app(scope, receive, send)

    async def _booted(self, scope: Scope, receive: Receive, node_id: str) -> bytes:
        """A node this main_service started listens at the address given: main_service
        connects to it and it joins the cluster, unless it runs another burla."""
        if scope[USER] not in (NODE, ADMIN) or VIA_JOB in scope:
            raise AuthError("only the cluster's own nodes may do this: it needs the node secret")
        try:
            body = Booted.model_validate_json(await read_body(receive))
        except ValidationError as error:
            problems = [{**p, "loc": ("body", *p["loc"])} for p in error.errors()]
            raise InvalidRequestError(refusal("POST", scope["path"], problems)) from None
        if node_id not in self.service.cluster.nodes:  # main_service dials only its own
            raise NotFoundError(f"main_service started no node {node_id}")
        if body.build != build_id():
            await self.service.node_refused(node_id, reason := build_mismatch(body.build))
            raise VersionMismatchError(reason)
        await self.service.node_booted(node_id, body.address)
        return json.dumps({"node_id": node_id}, separators=(",", ":")).encode()


class LaterApp:
    """An ASGI app built when first needed (or told to `load`), in a worker thread, so that
    the routes in front of it go on answering meanwhile. Requests that come while it is
    being built wait for it; it is built once."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None
        self._building: anyio.Event | None = None

    @property
    def loaded(self) -> bool:
        return self._app is not None

    async def load(self) -> ASGIApp:
        while self._app is None:
            if self._building is not None:
                await self._building.wait()
                continue
            self._building = building = anyio.Event()
            try:
                # Shielded: a caller that goes away leaves the build to those who wait.
                with anyio.CancelScope(shield=True):
                    self._app = await anyio.to_thread.run_sync(self._build)
            finally:
                self._building = None  # failed: whoever asks next builds it again
                building.set()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app or await self.load()
        await app(scope, receive, send)


def serve_first(
    service: MainService, token: str, limits: RequestLimits
) -> tuple[ASGIApp, LaterApp]:
    """main_service's whole API, of which only the front door's routes are ready: the
    FastAPI app behind it is built when `load` is called on the LaterApp, or when a request
    needs it. FastAPI is loaded only then."""
    users = Users(service.store, token, service.clock)

    def build() -> ASGIApp:
        from burla.services.main_service.app import api_routes

        return api_routes(service, users)

    later = LaterApp(build)
    return front_door(service, users, limits, later), later


async def load_when_quiet(later: LaterApp, service: MainService) -> None:
    """Build the FastAPI app once the cluster has been quiet for QUIET_S, unless a request
    built it first."""
    while not later.loaded and not quiet(service, QUIET_S):  # noqa: ASYNC110 - no event
        await anyio.sleep(QUIET_POLL_S)
    await later.load()


def quiet(service: MainService, for_s: float) -> bool:
    """Whether no node is booting, no job runs and none ran in the last `for_s` seconds."""
    if not service.idle_for(for_s):  # first: a busy cluster answers at its first test
        return False
    return not any(node.state == NodeState.BOOTING for node in service.cluster.nodes.values())
