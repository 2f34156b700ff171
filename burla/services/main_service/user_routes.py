"""main_service's routes for users and their tokens: what `burla users` and `burla tokens`
call. Only the cluster's admin may use them, except /me, which says who is asking."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from burla.core.errors import NotFoundError
from burla.services.main_service.auth import User, require_admin
from burla.services.main_service.users import Users


class NewUser(BaseModel):
    name: str


class NewToken(BaseModel):
    user: str


def install(app: FastAPI, users: Users, retire: Callable[[str], Awaitable[int]]) -> None:
    """`retire` hands a removed user's jobs over to the admin (MainService.retire_owner)."""
    admin = [Depends(require_admin)]

    @app.get("/me")
    async def me(user: User) -> dict[str, str]:
        return {"user": user}

    @app.get("/users", dependencies=admin)
    async def list_users() -> dict[str, Any]:
        return {"users": await users.list_users()}

    @app.post("/users", dependencies=admin)
    async def add_user(body: NewUser) -> dict[str, Any]:
        return await users.add(body.name)

    @app.delete("/users/{name}", dependencies=admin)
    async def remove_user(name: str) -> dict[str, Any]:
        """Remove a user and revoke their tokens. Their jobs keep running, but are no longer
        theirs: the admin's only, even if a user of the same name is added again."""
        if not await users.exists(name):
            raise NotFoundError(f"there is no user {name}; see `burla users list`")
        revoked = await users.revoke_all(name)
        jobs = await retire(name)
        await users.remove(name)  # last: removing again finishes a removal cut short
        return {"name": name, "revoked": revoked, "jobs_retired": jobs}

    @app.get("/tokens", dependencies=admin)
    async def list_tokens() -> dict[str, Any]:
        return {"tokens": await users.list_tokens()}

    @app.post("/tokens", dependencies=admin)
    async def create_token(body: NewToken) -> dict[str, Any]:
        """A new token for a user; its text is in this answer only."""
        return await users.create_token(body.user)

    @app.delete("/tokens/{token_id}", dependencies=admin)
    async def revoke_token(token_id: str) -> dict[str, Any]:
        return await users.revoke(token_id)
