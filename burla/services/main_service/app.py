"""main_service's HTTP API: jobs for clients, reports for nodes, status for everyone.

The routes a cold start needs are plain ASGI, in front of FastAPI (front.front_door); the
FastAPI app here serves every other route.

Job bodies are frames (burla.core.wire): a pickled function or input travels as opaque
bytes and is never unpickled here.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Response
from pydantic import BaseModel, Field
from starlette.types import ASGIApp

from burla.core import stream_wire, wire
from burla.core.errors import InvalidRequestError, NotFoundError
from burla.core.limits import MAX_UPLOADS, RequestLimits
from burla.services import errors, request_errors
from burla.services.input_pages import BLOB_KIND, kept_input, kept_page
from burla.services.main_service import dashboard, operations, user_routes, views
from burla.services.main_service.api_docs import (
    ERROR_RESPONSES,
    FRAMES_ANSWER,
    PICKLE_ANSWER,
    describe_plain_routes,
)
from burla.services.main_service.auth import Admin, User, visible_record, visible_run
from burla.services.main_service.front import front_door
from burla.services.main_service.job_routes import FRAMES
from burla.services.main_service.kept_functions import read_function
from burla.services.main_service.service import MainService
from burla.services.main_service.submission import JOB_ID, upload_prefix
from burla.services.main_service.users import Users, may_see, owner_of
from burla.services.result_pages import read_results
from burla.services.store_keys import job_key, results_prefix


class Uploads(BaseModel):
    count: int = Field(ge=0, le=MAX_UPLOADS)
    job_id: str | None = None
    """The job the blobs are for; without one (source archives, uploaded before any job
    that uses them), the user's own prefix."""
    first: int = Field(default=0, ge=0)
    """The number of the first key: a job's uploads are asked for in several calls."""


def create_app(service: MainService, token: str, limits: RequestLimits | None = None) -> ASGIApp:
    """The whole API, every route ready: the front door (front.front_door) before the
    FastAPI app of the other routes. main_service itself builds the FastAPI app later
    (front.serve_first)."""
    users = Users(service.store, token, service.clock)
    limits = limits or RequestLimits.from_environ(os.environ)
    return front_door(service, users, limits, api_routes(service, users))


def api_routes(service: MainService, users: Users) -> FastAPI:
    """The FastAPI app of every route but the front door's, which come to it with their
    user checked (bearer.BearerAuth)."""
    app = FastAPI(title="burla main_service", responses=ERROR_RESPONSES)
    describe_plain_routes(app)
    errors.install(app)
    request_errors.install(app)
    _install_status(app, service)
    _install_uploads(app, service)
    _install_jobs(app, service)
    # After the routes of jobs, which are matched first.
    operations.install(app, service)
    user_routes.install(app, users, service.retire_owner)
    dashboard.install(app, service, users)
    return app


def _install_status(app: FastAPI, service: MainService) -> None:
    @app.get("/cluster")
    async def cluster(user: User) -> dict[str, Any]:
        return views.cluster_overview(service, user)

    @app.post("/restart_cluster")
    async def restart_cluster(user: Admin) -> dict[str, Any]:
        await service.restart()
        return views.cluster_overview(service, user)

    @app.post("/admin/prune")
    async def prune(
        user: Admin,
        max_gb: float = Query(ge=0, le=2**20),
        results_max_gb: float | None = Query(default=None, ge=0, le=2**20),
    ) -> dict[str, Any]:
        """Every node keeps the packages it unpacked for jobs within `max_gb` (least
        recently used go first; never those of a running job): node -> done; and so does
        the blob store, the packages' archives: archives removed, bytes freed and kept.
        With `results_max_gb`, finished jobs' results in the Store are kept within it too
        (the longest finished go first): jobs removed, bytes freed and kept."""
        limit = int(max_gb * 2**30)
        answer: dict[str, Any] = {
            "nodes": await service.nodes.prune_packages(limit),
            "archives": dataclasses.asdict(await service.packages.prune(limit)),
        }
        if results_max_gb is not None:
            forgotten = await service.job_driver.forget_finished(int(results_max_gb * 2**30))
            answer["results"] = dataclasses.asdict(forgotten)
        return answer


def _install_uploads(app: FastAPI, service: MainService) -> None:
    @app.post("/uploads")
    async def uploads(body: Uploads, user: User) -> dict[str, Any]:
        """Signed URLs for a function or inputs too big to send inline: one key each, under
        the job's own upload prefix (the job may refer to no other blob)."""
        if body.job_id is None:
            # "_" is in no job id: these keys are never under a job's prefix.
            prefix = f"{upload_prefix(user)}_{secrets.token_hex(8)}/"
        elif JOB_ID.fullmatch(body.job_id):
            prefix = upload_prefix(user, body.job_id)
        else:
            raise InvalidRequestError(f"job id {body.job_id!r} is not 8-64 of a-z, 0-9 and '-'")
        keys = [f"{prefix}{n}" for n in range(body.first, body.first + body.count)]
        urls = [await service.blobs.signed_url(k, method="PUT", expires_s=3600) for k in keys]
        return {"keys": keys, "urls": urls}


GONE_HINT = (
    " (finished jobs are removed, the longest finished first, once their results pass "
    "the cluster's BURLA_RESULTS_MAX_GB)"
)


def _install_jobs(app: FastAPI, service: MainService) -> None:
    """A job's state, its stored results and cancelling it (jobs are posted and followed
    through job_routes.JobRoutes)."""

    @app.get("/jobs/{job_id}")
    async def job(job_id: str, user: User) -> dict[str, Any]:
        run = visible_run(service, job_id, user)
        if run is None:
            stored = await visible_record(service, job_id, user)
            if stored is None:
                raise NotFoundError(f"there is no job {job_id}{GONE_HINT}")
            shown = {k: v for k, v in stored.items() if k not in ("resume", "kept")}
            return {"job_id": job_id, **shown}
        counts: dict[str, int] = {}
        for record in run.machine.inputs:
            counts[record.status.value] = counts.get(record.status.value, 0) + 1
        return {
            "job_id": job_id,
            "spec": run.spec.model_dump(mode="json"),
            "state": run.state.value,
            "error": run.error,
            "failure": run.failure,
            "counts": run.counts(),
            "inputs": counts,
            "owner": run.owner,
            "cost": run.cost(service.clock.now()),
            "budget_stop": run.budget_stop,
            "memory": run.memory(),
        }

    @app.get("/jobs/{job_id}/results", response_class=Response, responses=FRAMES_ANSWER)
    async def results(
        job_id: str,
        user: User,
        after: str = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 64,
    ) -> Response:
        """Stored results, for a client that detached: `limit` pages of them (see
        result_pages) after the page `after` names. While more may follow, the answer's
        stream_wire.NEXT_PAGE header names the page to ask after next. An input run twice may be in
        two pages: the first one's result is the one that counts."""
        held = visible_run(service, job_id, user) is not None
        if not held and await visible_record(service, job_id, user) is None:
            raise NotFoundError(f"there is no job {job_id}{GONE_HINT}")
        prefix = results_prefix(job_id)
        docs = await service.store.list(prefix, after=prefix + after if after else "", limit=limit)
        frames = [
            (stream_wire.JobResult(index, kind), payload)
            for doc in docs
            for index, kind, payload in await read_results(service.blobs, doc)
        ]
        more = (
            {stream_wire.NEXT_PAGE: docs[-1].key.removeprefix(prefix)} if len(docs) == limit else {}
        )
        return Response(stream_wire.encode_events(frames), media_type=FRAMES, headers=more)

    @app.get("/jobs/{job_id}/function", response_class=Response, responses=PICKLE_ANSWER)
    async def function(job_id: str, user: User) -> Response:
        """The job's pickled function, kept with its results: to run an input again."""
        run = visible_run(service, job_id, user)
        if run is not None:
            pickled, key = run.function, run.function_key
        else:
            record = await visible_record(service, job_id, user)
            if record is None:
                raise NotFoundError(f"there is no job {job_id}{GONE_HINT}")
            kept = record.get("kept") or record.get("resume")
            if kept is None:
                raise NotFoundError(f"job {job_id} ended before burla kept jobs' functions")
            try:
                pickled, key = await read_function(service.store, kept), kept["function_key"]
            except LookupError as gone:
                raise NotFoundError(f"job {job_id}'s function is gone: {gone}") from None
        if pickled is None:
            pickled = await service.blobs.get(str(key))
        return Response(pickled, media_type="application/octet-stream")

    async def _inputs_kept(job_id: str, user: str) -> None:
        """Have the job's inputs in the Store (a small job's go with its first record:
        they are written now if it has none yet), or raise NotFoundError."""
        run = visible_run(service, job_id, user)
        if run is not None:
            await service.job_driver.records.keep_pages(run)
        elif await visible_record(service, job_id, user) is None:
            raise NotFoundError(f"there is no job {job_id}{GONE_HINT}")

    @app.get("/jobs/{job_id}/inputs", response_class=Response, responses=FRAMES_ANSWER)
    async def kept_inputs_route(
        job_id: str, user: User, after: Annotated[int, Query(ge=-1)] = -1
    ) -> Response:
        """The job's inputs as kept (see input_pages), a page of them after input `after`:
        a frame whose header gives each one's index, kind ("inline": its pickled
        arguments follow; "blob": big, read it from /jobs/{id}/inputs/{index}) and size,
        and "next", the `after` of the next page (None after the last)."""
        await _inputs_kept(job_id, user)
        header, payload = await kept_page(service.store, job_id, after)
        return Response(wire.encode(header, payload), media_type=FRAMES)

    @app.get("/jobs/{job_id}/inputs/{index}", response_class=Response, responses=PICKLE_ANSWER)
    async def kept_input_route(
        job_id: str, index: Annotated[int, Path(ge=0)], user: User
    ) -> Response:
        """Input `index` of the job as it was sent (its pickled arguments), kept with the
        job's results (see input_pages)."""
        await _inputs_kept(job_id, user)
        kind, data = await kept_input(service.store, job_id, index)
        if kind == BLOB_KIND:
            data = await service.blobs.get(data.decode())
        return Response(data, media_type="application/octet-stream")

    @app.post("/jobs/{job_id}/cancel")
    async def cancel(job_id: str, user: User, failed: bool = False) -> dict[str, str]:
        """Cancel a job of the user's; a job not seen yet is canceled when it comes.
        `failed`: the caller stopped at an input's error, so the job failed."""
        if visible_run(service, job_id, user) is None:
            record = await service.store.get(job_key(job_id))
            if job_id in service.jobs or (record and not may_see(user, owner_of(record.data))):
                raise NotFoundError(f"there is no job {job_id}")
        await service.cancel(job_id, failed=failed)
        run = service.jobs.get(job_id)
        return {"job_id": job_id, "state": run.state.value if run else "canceled"}
