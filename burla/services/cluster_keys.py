"""The secrets a cluster derives from its token, one for each use, so that no part of the
cluster holds more than it needs.

- The token is the admin's: only main_service and the admin hold it.
- The node secret lets main_service and its nodes know each other (the first frame of
  their link, a node's "booted" call, the signing of local blob URLs). Nodes get it in
  their boot environment; it cannot be turned back into the token.
- A job token is given to a job's workers, so that a function calling
  remote_parallel_map itself acts as the job's owner, for as long as the job runs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

JOB_TOKEN_PREFIX = "job."


def node_secret(token: str) -> str:
    return _derived(token.encode(), b"burla node secret").hex()


def blob_signing_key(secret: str) -> bytes:
    """The key local blob URLs are signed with, from the node secret (both ends hold it)."""
    return _derived(secret.encode(), b"burla blob urls")


class JobTokens:
    """Makes and reads job tokens: "job.<job id>.<MAC of the job id and its owner>".

    Nothing is stored: the MAC proves main_service made the token, and it names the
    owner, so a job id used again by someone else does not take the old token with it.
    Only the key derived from the cluster's token is kept."""

    def __init__(self, token: str) -> None:
        self._key = _derived(token.encode(), b"burla job tokens")

    def make(self, job_id: str, owner: str) -> str:
        return f"{JOB_TOKEN_PREFIX}{job_id}.{self._mac(job_id, owner)}"

    def job_of(self, token: str, owner_of: Callable[[str], str | None]) -> str | None:
        """The job `token` was made for, if it still runs (`owner_of` gives a running
        job's owner) and has the owner the token was made for; else None."""
        job_id, dot, mac = token.removeprefix(JOB_TOKEN_PREFIX).rpartition(".")
        owner = owner_of(job_id) if dot and token.startswith(JOB_TOKEN_PREFIX) else None
        if owner is None or not hmac.compare_digest(mac, self._mac(job_id, owner)):
            return None
        return job_id

    def _mac(self, job_id: str, owner: str) -> str:
        return hmac.new(self._key, f"{job_id}\n{owner}".encode(), hashlib.sha256).hexdigest()


def _derived(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, purpose, hashlib.sha256).digest()
