"""One cluster's main_service over HTTP: a request it does not answer is sent again, and
an error it answers with becomes burla's own error."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from burla.client import local
from burla.client.http import HttpError, HttpPool, Response
from burla.core import errors
from burla.core.backoff import Backoff
from burla.core.errors import (
    BurlaError,
    ClusterUnavailableError,
    InvalidRequestError,
    PayloadTooLargeError,
)

WAIT_S = 10.0
"""How long a request for a job's events waits for news before it is answered."""
RECONNECT_S = 60.0
"""How long a call keeps asking a cluster that does not answer (a dropped connection,
a main_service restarting) before it gives up."""
RETRY_FIRST_PAUSE_S = 0.1
RETRY_MAX_PAUSE_S = 2.0


class Connection:
    """Requests to one cluster's main_service, safe to share between threads."""

    def __init__(self, cluster: local.ClusterInfo, local_backend: str | None = None) -> None:
        self.cluster = cluster
        self.local_backend = local_backend
        """"local" or "docker" for this machine's own cluster, which the client may start."""
        self.stamp: tuple[int, ...] | None = None
        """What a local cluster's cluster.json looked like when it last named this one."""
        self.http = _pool(cluster)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, retry_for_s: float = 0.0, **kwargs: Any) -> Response:
        response, _ = self.answered(method, path, retry_for_s=retry_for_s, **kwargs)
        if response.status_code >= 400:
            raise error_from(response, f"{method} {path}")
        return response

    def answered(
        self, method: str, path: str, *, retry_for_s: float, **kwargs: Any
    ) -> tuple[Response, bool]:
        """The answer to a request, sent again while it gets none (a dropped connection,
        a cluster restarting) for up to `retry_for_s`; and whether an earlier try went
        unanswered (so the cluster may have carried it out already). An error status is
        the caller's to read."""
        backoff = Backoff(
            RETRY_FIRST_PAUSE_S,
            RETRY_MAX_PAUSE_S,
            jitter=0.5,
            clock=time.monotonic,
            give_up_after_s=retry_for_s,
        )
        unanswered = False
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
                unanswered = unanswered or response.resent
                break
            except HttpError as error:
                gone = self.cluster.pid > 0 and not local.alive(self.cluster.pid)
                if gone or backoff.exhausted:
                    waited = f" (tried for {retry_for_s:g} s)" if retry_for_s else ""
                    raise ClusterUnavailableError(
                        f"the cluster did not answer {method} {path}{waited}: {error}; is it "
                        "running? (`burla local status`)"
                    ) from error
                unanswered = True
                time.sleep(backoff.pause())
        return response, unanswered

    def call_reviving(self, method: str, path: str, **kwargs: Any) -> Response:
        """`call`, resent for up to RECONNECT_S; when this machine's own cluster died, it is
        started again (its new main_service takes jobs over from the Store) and asked again."""
        try:
            return self.call(method, path, retry_for_s=RECONNECT_S, **kwargs)
        except ClusterUnavailableError:
            if self.local_backend is None or self.cluster.pid <= 0:
                raise
            self._restart_local(self.local_backend)
            return self.call(method, path, retry_for_s=RECONNECT_S, **kwargs)

    def cancel(self, job_id: str, *, failed: bool = False) -> None:
        """Stop the job; `failed`: because an input's error reached this caller."""
        params = {"failed": "true"} if failed else None
        with contextlib.suppress(HttpError):  # a cluster that is gone runs nothing
            self.http.request("POST", f"/jobs/{job_id}/cancel", params=params, timeout_s=5)

    def _restart_local(self, backend: str) -> None:
        root = local.local_dir(backend)
        cluster = local.start(root, backend=backend)
        self.http.close()
        self.cluster, self.http, self.stamp = cluster, _pool(cluster), local.stamp(root)


def _pool(cluster: local.ClusterInfo) -> HttpPool:
    headers = {"authorization": f"Bearer {cluster.token}"}
    return HttpPool(cluster.url, headers, WAIT_S + 30, cluster.cert_sha256)


def error_from(response: Response, request: str) -> BurlaError:
    """The BurlaError a service answered with, as its own type where burla has it."""
    try:
        body = response.json()
        body = body.get("detail", body)
        name, message = body["error"], body["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return BurlaError(
            f"the cluster answered {request} with {response.status_code}: {response.text[:500]}"
        )
    error_type = getattr(errors, name, None)
    if not (isinstance(error_type, type) and issubclass(error_type, BurlaError)):
        error_type = InvalidRequestError if response.status_code < 500 else BurlaError
    error = error_type(message)
    if isinstance(error, PayloadTooLargeError) and isinstance(body.get("limit"), int):
        error.limit = body["limit"]
    return error
