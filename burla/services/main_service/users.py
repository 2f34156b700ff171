"""Who may use a cluster: its users and their tokens.

A token is 32 random bytes (hex); the Store keeps only its SHA-256 hash, with its user.
main_service keeps every hash in memory, so checking a request is one hash and one dict
lookup, never a Store read. The cluster's own token (its bootstrap token, in a local
cluster's cluster.json or a cloud cluster's --token-file) is the admin's: it is never
stored, and it cannot be revoked. One main_service serves a cluster, so the map it keeps
is the whole truth once loaded.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio

from burla.core.clock import Clock
from burla.core.errors import ConflictError, InvalidRequestError, NotFoundError
from burla.core.protocols import Document, Store
from burla.services.cluster_keys import node_secret
from burla.services.store_keys import JOBS_PREFIX

if TYPE_CHECKING:
    from burla.services.main_service.jobs import JobRun

ADMIN = "admin"
"""The user of the cluster's own token: sees every job, manages users and the cluster."""
NODE = "(node)"
"""Who comes with the node secret: one of the cluster's nodes (no user has this name)."""
RETIRED = "(removed)"
"""Follows a removed user's name as the owner of their jobs: no user has such a name."""
USERS_PREFIX = "auth/users/"
TOKENS_PREFIX = "auth/tokens/"
USER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
MOST_LISTED = 100_000


async def retire_jobs(
    store: Store,
    user: str,
    running: Iterable[JobRun],
    save: Callable[[JobRun], Awaitable[None]],
) -> int:
    """Hand a removed user's jobs, running (`running`, saved with `save`) or in the Store,
    to a name no user can have, so that a user of the same name added later does not get
    them; how many there were."""
    retired = f"{user} {RETIRED}"
    held = [run for run in running if run.owner == user]
    for run in held:
        run.owner = retired  # a running job's token stops working with it
        await save(run)
    held_ids = {run.spec.job_id for run in held}
    count, after = len(held), ""
    while records := await store.list(JOBS_PREFIX, after=after):
        after = records[-1].key
        for doc in records:
            if owner_of(doc.data) == user and doc.key.removeprefix(JOBS_PREFIX) not in held_ids:
                await _retire_record(store, doc.key, user, retired)
                count += 1
    return count


async def _retire_record(store: Store, key: str, user: str, retired: str) -> None:
    while (doc := await store.get(key)) is not None and owner_of(doc.data) == user:
        try:
            await store.put(key, {**doc.data, "owner": retired}, if_version=doc.version)
            return
        except ConflictError:
            continue  # written meanwhile: look again


def token_hash(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def owner_of(record: dict[str, Any]) -> str:
    """The owner of a job's Store record (records from before owners were kept: the admin)."""
    return str(record.get("owner", ADMIN))


def may_see(user: str, owner: str) -> bool:
    """Whether `user` may read or cancel a job of `owner`'s."""
    return user in (owner, ADMIN)


class Users:
    def __init__(self, store: Store, admin_token: str, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._by_hash: dict[bytes, str] = {
            token_hash(admin_token.encode()): ADMIN,
            token_hash(node_secret(admin_token).encode()): NODE,
        }
        self._loaded = False
        self._load_lock = anyio.Lock()

    def user_of(self, token: bytes) -> str | None:
        """The user whose token this is, or None."""
        return self._by_hash.get(token_hash(token))

    @property
    def loaded(self) -> bool:
        return self._loaded

    async def load(self) -> None:
        """Read every token's hash from the Store, once (at the first unknown token)."""
        async with self._load_lock:
            if self._loaded:
                return
            for doc in await self.store.list(TOKENS_PREFIX, limit=MOST_LISTED):
                self._by_hash[bytes.fromhex(doc.data["hash"])] = str(doc.data["user"])
            self._loaded = True

    # Users ------------------------------------------------------------------------------
    async def add(self, name: str) -> dict[str, Any]:
        if not USER_NAME.fullmatch(name) or name == ADMIN:
            raise InvalidRequestError(
                f"user name {name!r} is not 1-32 of a-z, 0-9, '_' and '-' starting with a "
                f"letter (and not {ADMIN!r}, the cluster token's user); choose another"
            )
        record = {"name": name, "created_at": self.clock.now()}
        try:
            await self.store.put(USERS_PREFIX + name, record, if_version=0)
        except ConflictError:
            raise InvalidRequestError(f"there is a user {name} already") from None
        return record

    async def list_users(self) -> list[dict[str, Any]]:
        await self.load()
        counts: dict[str, int] = {}
        for user in self._by_hash.values():
            counts[user] = counts.get(user, 0) + 1
        docs = await self.store.list(USERS_PREFIX, limit=MOST_LISTED)
        return [{**doc.data, "tokens": counts.get(doc.data["name"], 0)} for doc in docs]

    async def exists(self, name: str) -> bool:
        return await self.store.get(USERS_PREFIX + name) is not None

    async def revoke_all(self, name: str) -> list[str]:
        """Revoke every token of a user's; the ids of the tokens revoked."""
        revoked = [doc.key.removeprefix(TOKENS_PREFIX) for doc in await self._tokens(name)]
        for token_id in revoked:
            await self.revoke(token_id)
        return revoked

    async def remove(self, name: str) -> None:
        """Remove a user (revoke their tokens first)."""
        if not await self.store.delete(USERS_PREFIX + name):
            raise NotFoundError(f"there is no user {name}; see `burla users list`")

    # Tokens -----------------------------------------------------------------------------
    async def create_token(self, user: str) -> dict[str, Any]:
        """A new token of `user`'s: the only time its text is seen."""
        if user != ADMIN and await self.store.get(USERS_PREFIX + user) is None:
            raise NotFoundError(f"there is no user {user}; add one with `burla users add {user}`")
        await self.load()
        token = secrets.token_hex(32)
        hashed = token_hash(token.encode())
        record = {"user": user, "hash": hashed.hex(), "created_at": self.clock.now()}
        while True:
            token_id = secrets.token_hex(4)
            try:
                await self.store.put(TOKENS_PREFIX + token_id, record, if_version=0)
                break
            except ConflictError:
                continue  # the id was taken: draw another
        self._by_hash[hashed] = user
        return {"id": token_id, "user": user, "token": token, "created_at": record["created_at"]}

    async def list_tokens(self) -> list[dict[str, Any]]:
        return [_shown(doc) for doc in await self._tokens(None)]

    async def revoke(self, token_id: str) -> dict[str, Any]:
        key = TOKENS_PREFIX + token_id
        doc = await self.store.get(key)
        if doc is None or not await self.store.delete(key):
            raise NotFoundError(f"there is no token {token_id}; see `burla tokens list`")
        await self.load()
        self._by_hash.pop(bytes.fromhex(doc.data["hash"]), None)
        return _shown(doc)

    async def _tokens(self, user: str | None) -> list[Document]:
        docs = await self.store.list(TOKENS_PREFIX, limit=MOST_LISTED)
        return [doc for doc in docs if user is None or doc.data["user"] == user]


def _shown(doc: Document) -> dict[str, Any]:
    """A token as it is listed: never its hash."""
    token_id = doc.key.removeprefix(TOKENS_PREFIX)
    return {"id": token_id, "user": doc.data["user"], "created_at": doc.data["created_at"]}
