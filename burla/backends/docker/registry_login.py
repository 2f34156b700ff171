"""Logging in to a cluster's registry: Docker's auth_config, given with each pull and push.

Artifact Registry takes a Google OAuth access token as the password of the user
`oauth2accesstoken`. Such a token lives about an hour, so a TokenLogin asks its source for
a new one a minute before the last one expires; the engine is never told to remember it
(no `docker login`, nothing written to disk).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

RegistryLogin = Callable[[], dict[str, str]]
"""Docker's auth_config for the registry, valid now."""

TOKEN_USER = "oauth2accesstoken"
RENEW_BEFORE_S = 60.0


class TokenLogin:
    """A RegistryLogin with access tokens from `fetch`, which gives a token and how many
    seconds it lives; each is kept until a minute before it expires. Thread-safe: the
    engine's calls run in worker threads."""

    def __init__(
        self,
        fetch: Callable[[], tuple[str, float]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> dict[str, str]:
        with self._lock:
            if not self._token or self._clock() >= self._renew_at:
                asked_at = self._clock()
                self._token, lives_s = self._fetch()
                self._renew_at = asked_at + lives_s - RENEW_BEFORE_S
            return {"username": TOKEN_USER, "password": self._token}
