"""The web dashboard main_service serves at /dashboard: plain HTML, JavaScript and CSS
shipped in the package, and two live feeds (server-sent events).

The feeds read main_service's state on a timer while a page is open: a job's own path
does no work for them, with or without a dashboard. The page and its files hold no
cluster data and need no token; everything else does. A browser gives a user's token
once (the login form, or a link ending in `?token=`), and from then on sends it in an
HttpOnly cookie. Each user sees the cluster and only their own jobs; the admin (the
cluster's own token) sees every job.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from burla.core.errors import NotFoundError
from burla.services.cluster_keys import JOB_TOKEN_PREFIX
from burla.services.main_service import views
from burla.services.main_service.auth import User, visible_run
from burla.services.main_service.dashboard_paths import COOKIE, FILES, STATIC
from burla.services.main_service.job_logs import stored_page
from burla.services.main_service.service import MainService
from burla.services.main_service.users import NODE, Users

CLUSTER_EVERY_S = 1.0
JOB_EVERY_S = 0.5
KEEPALIVE_S = 15.0
LINES_PER_UPDATE = 500
LETTERS_SHOWN = 5000
"""The job page draws one square per input for the first this many inputs."""


def install(app: FastAPI, service: MainService, users: Users) -> None:
    _install_pages(app, users)
    _install_feeds(app, service)


def _install_pages(app: FastAPI, users: Users) -> None:
    """The page, its files, and signing in and out."""
    page = (STATIC / "index.html").read_bytes()
    files = {name: ((STATIC / name).read_bytes(), kind) for name, kind in FILES.items()}

    @app.get("/dashboard", include_in_schema=False)
    @app.get("/dashboard/", include_in_schema=False)
    async def dashboard(request: Request) -> Response:
        given = request.query_params.get("token")
        if given is not None:
            # A link with the token: keep it in the cookie, and take it out of the address
            # bar (and the browser's history).
            return await _signed_in(given, users)
        return Response(page, media_type="text/html; charset=utf-8")

    @app.get("/dashboard/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in files:
            raise NotFoundError(f"the dashboard has no file {name!r}")
        content, kind = files[name]
        return Response(content, media_type=kind, headers={"cache-control": "no-cache"})

    @app.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode(errors="replace"))
        return await _signed_in(form.get("token", [""])[0], users)

    @app.post("/dashboard/logout", include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse("/dashboard", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


def _install_feeds(app: FastAPI, service: MainService) -> None:
    """The live feeds of the cluster and of one job: what the page shows."""

    @app.get("/dashboard/feed/cluster", include_in_schema=False)
    async def cluster_feed(user: User) -> Response:
        async def snapshot() -> dict[str, Any]:
            return {
                "cluster": views.cluster_overview(service, user),
                "jobs": views.running_jobs(service, user),
            }

        return _event_stream(_changes(snapshot, CLUSTER_EVERY_S))

    @app.get("/dashboard/feed/jobs/{job_id}", include_in_schema=False)
    async def job_feed(job_id: str, user: User) -> Response:
        run = visible_run(service, job_id, user)
        if run is None:  # gone from main_service's memory, or another user's: alike
            raise NotFoundError(
                f"main_service holds no job {job_id} of yours; see your jobs with `burla jobs`"
            )
        cursor = 0

        async def snapshot() -> dict[str, Any]:
            nonlocal cursor
            if cursor < run.log.memory_from:  # printed before this main_service took over
                lines, cursor = await stored_page(service.store, job_id, cursor, LINES_PER_UPDATE)
            else:
                lines, cursor = run.log.page(cursor, LINES_PER_UPDATE)
            return {
                "job": views.job_summary(run, service.clock.now()),
                "busy_cpus": views.busy_cpus(run),
                "letters": views.status_letters(run, LETTERS_SHOWN),
                "lines": lines,
                "next": cursor,  # the same line printed twice is still news
            }

        return _event_stream(_changes(snapshot, JOB_EVERY_S))


async def _signed_in(given: str, users: Users) -> Response:
    """Keep a person's valid token in the cookie, or send the browser back to the form.
    A job's token (for its code's own calls) and the node secret are no person's."""
    if not users.loaded:  # a token made before this main_service started
        await users.load()
    user = None if given.startswith(JOB_TOKEN_PREFIX) else users.user_of(given.encode())
    if user in (None, NODE):
        return RedirectResponse("/dashboard#denied", status_code=303)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(COOKIE, given, httponly=True, samesite="strict", path="/")
    return response


async def _changes(
    snapshot: Callable[[], Awaitable[dict[str, Any]]], every_s: float
) -> AsyncIterator[str]:
    """Server-sent events: the snapshot whenever it differs from the last one sent, and a
    comment now and then so that proxies keep the connection open."""
    last = ""
    quiet_s = 0.0
    while True:
        data = json.dumps(await snapshot(), separators=(",", ":"))
        if data != last:
            yield f"data: {data}\n\n"
            last, quiet_s = data, 0.0
        elif quiet_s >= KEEPALIVE_S:
            yield ": still here\n\n"
            quiet_s = 0.0
        await anyio.sleep(every_s)
        quiet_s += every_s


def _event_stream(events: AsyncIterator[str]) -> Response:
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
