"""What a route's user may do: FastAPI dependencies over the user that BearerAuth
(burla.services.main_service.bearer) left in the request's scope, and the jobs a user may
see."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from burla.core.errors import AuthError, NotFoundError
from burla.services.main_service.bearer import USER, VIA_JOB
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.retention import REMOVED
from burla.services.main_service.service import MainService
from burla.services.main_service.users import ADMIN, may_see, owner_of
from burla.services.store_keys import job_key


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


def _user(request: Request) -> str:
    return request.scope.get(USER) or ""


User = Annotated[str, Depends(user_of)]
Admin = Annotated[str, Depends(require_admin)]


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
