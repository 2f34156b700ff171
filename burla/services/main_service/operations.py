"""main_service's routes for operating a cluster: list jobs, read a job's inputs, lines and
errors, change the standby definition. What `burla` commands and the dashboard read."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query

from burla.core.cost import costs_by_user
from burla.core.errors import NotFoundError
from burla.services.main_service import views
from burla.services.main_service.auth import User, require_admin, visible_record, visible_run
from burla.services.main_service.held_jobs import FORGET_AFTER_S
from burla.services.main_service.job_logs import stored_page
from burla.services.main_service.job_routes import MAX_WAIT_S
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.service import MainService
from burla.services.main_service.standby import with_standby
from burla.services.main_service.users import may_see, owner_of
from burla.services.store_keys import JOBS_PREFIX

Limit = Annotated[int, Query(ge=0, le=10_000)]
"""How many items a page may ask for."""
Wait = Annotated[float, Query(ge=0, le=MAX_WAIT_S)]
PAGE_LINES = 10_000


def install(app: FastAPI, service: MainService) -> None:
    @app.get("/jobs")
    async def list_jobs(user: User, all: bool = False, limit: Limit = 100) -> dict[str, Any]:
        """The user's jobs (the admin's: everyone's) held in memory, newest first; with
        `all`, then those only in the Store."""
        jobs = views.running_jobs(service, user)[:limit]
        if all and len(jobs) < limit:
            jobs += await _stored_jobs(service, user, limit - len(jobs))
        return {"jobs": jobs}

    @app.get("/costs")
    async def costs(user: User) -> dict[str, Any]:
        """Each user's jobs together (a user's own only; the admin's: everyone's): how
        many, their node-seconds and cost, over every job main_service holds or the Store
        keeps a record of (finished jobs go with their results, see retention)."""
        now = service.clock.now()
        jobs = [
            (run.owner, run.node_time.node_seconds(now), run.node_time.usd(now))
            for run in service.jobs.values()
            if may_see(user, run.owner)
        ]
        after = ""
        while docs := await service.store.list(JOBS_PREFIX, after=after, limit=1000):
            after = docs[-1].key
            for doc in docs:
                owner = owner_of(doc.data)
                if doc.key.removeprefix(JOBS_PREFIX) in service.jobs or not may_see(user, owner):
                    continue
                cost = doc.data.get("cost") or {}
                jobs.append((owner, float(cost.get("node_seconds") or 0.0), cost.get("usd", 0.0)))
        return {"users": [dataclasses.asdict(total) for total in costs_by_user(jobs)]}

    @app.get("/jobs/{job_id}/inputs")
    async def inputs(
        job_id: str, user: User, after: int = -1, limit: Limit = 1000
    ) -> dict[str, Any]:
        run = _held(service, job_id, user)
        return {"inputs": views.input_statuses(run, after, min(limit, 10_000))}

    @app.get("/jobs/{job_id}/logs")
    async def logs(job_id: str, user: User, after: int = 0, wait: Wait = 0.0) -> dict[str, Any]:
        """Printed lines and failures from line number `after` on; with `wait`, waits up
        to that long for some. A job main_service no longer holds (or held before it
        took the job over) is read from the Store."""
        run = visible_run(service, job_id, user)
        if run is None:
            record = await visible_record(service, job_id, user)
            if record is None:
                raise NotFoundError(f"there is no job {job_id} of yours; see `burla jobs --all`")
            lines, cursor = await stored_page(service.store, job_id, after, PAGE_LINES)
            return {"lines": lines, "next": cursor, "state": record["state"]}
        if wait > 0:
            await run.wait_for_lines(after, min(wait, MAX_WAIT_S))
        if after < run.log.memory_from:
            lines, cursor = await stored_page(service.store, job_id, after, PAGE_LINES)
        else:
            lines, cursor = run.log.page(after, PAGE_LINES)
        return {"lines": lines, "next": cursor, "state": run.state.value}

    @app.get("/jobs/{job_id}/errors")
    async def job_errors(job_id: str, user: User) -> dict[str, Any]:
        return {"errors": views.job_errors(_held(service, job_id, user))}

    @app.put("/standby", dependencies=[Depends(require_admin)])
    async def set_standby(body: dict[str, Any]) -> dict[str, Any]:
        """Replace the standby definition and restart the cluster into it."""
        await service.restart(with_standby(service.cluster.config, body))
        return views.cluster_overview(service)


def _held(service: MainService, job_id: str, user: str) -> JobRun:
    """The user's job as main_service holds it; NotFoundError once it is forgotten."""
    run = visible_run(service, job_id, user)
    if run is None:
        raise NotFoundError(
            f"main_service holds no job {job_id}: a job's inputs are kept up to "
            f"{FORGET_AFTER_S / 60:g} minutes after it ends (its results and lines stay: "
            f"`burla jobs result {job_id}`, `burla jobs logs {job_id}`); list jobs with "
            "`burla jobs --all`"
        )
    return run


async def _stored_jobs(service: MainService, user: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` of the user's jobs (the admin's: everyone's) that only the Store holds."""
    found: list[dict[str, Any]] = []
    for doc in await service.store.list(JOBS_PREFIX, limit=10_000):
        job_id = doc.key.removeprefix(JOBS_PREFIX)
        if job_id in service.jobs or not may_see(user, owner_of(doc.data)):
            continue
        if len(found) >= limit:
            break
        spec = doc.data.get("spec", {})
        found.append(
            {
                "job_id": job_id,
                "state": doc.data.get("state"),
                "n_inputs": spec.get("n_inputs"),
                "func_cpu": spec.get("func_cpu"),
                "image": spec.get("image"),
                "error": doc.data.get("error"),
                "failure": doc.data.get("failure"),
                **(doc.data.get("counts") or {}),
                "owner": owner_of(doc.data),
                "cost": doc.data.get("cost"),
                "max_cost": spec.get("max_cost"),
                "budget_stop": doc.data.get("budget_stop"),
            }
        )
    return found
