"""The process's connection to each cluster, found (or, for this machine's own, started)
from the settings, with what the client learned of that cluster; and a job's submission."""

from __future__ import annotations

import atexit
import json
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from burla.client import local
from burla.client.connection import RECONNECT_S, Connection, error_from
from burla.client.fit import fit
from burla.client.uploads import Payload, job_request, upload_sources
from burla.core.errors import (
    ClusterRestartedWarning,
    ClusterUnavailableError,
    PayloadTooLargeError,
    SettingIgnoredWarning,
)
from burla.core.limits import RequestLimits
from burla.core.settings import JOB_TOKEN_ENV, Settings, config_path
from burla.release import install_stamp

INSTALL_WAIT_S = 900.0
"""How long a job request may take when the cluster installs packages or makes an
image for it first."""


class Session(Connection):
    """A client's connection to one cluster's main_service, shared by every call in the
    process (and thread-safe), so that a warm call costs no new connection."""

    _cached: ClassVar[dict[str, Session]] = {}
    _cache_lock: ClassVar[threading.Lock] = threading.Lock()
    """Threads that start jobs at once share one session (and start one cluster)."""

    def __init__(self, cluster: local.ClusterInfo, local_backend: str | None = None) -> None:
        super().__init__(cluster, local_backend)
        self.job_request_limit = RequestLimits.from_environ(os.environ).job_request
        """The size of request the cluster takes for a job, as far as this client knows."""
        self.sent_sources: set[str] = set()
        """Source archives a job took: the cluster keeps them."""

    @classmethod
    def for_settings(cls, settings: Settings, fresh: bool = False) -> Session:
        """The session with the cluster `settings` name: a local one is started if it is
        not running; a cloud one must be."""
        if settings.job_token:
            return cls.for_job(settings, settings.job_token)
        if settings.backend != "gcp":
            return cls.for_local_cluster(settings.backend, fresh)
        if not settings.main_url or not settings.token:
            raise ClusterUnavailableError(
                "backend 'gcp' needs a running cluster's address and token: set main_url "
                f"and token in {config_path(os.environ)} (or BURLA_MAIN_URL and BURLA_TOKEN); "
                "see the README's 'Google Cloud' section to start one"
            )
        cluster = local.remote(settings.main_url, settings.token, settings.main_cert_sha256)
        return cls._with_cluster(settings.main_url, cluster)

    @classmethod
    def for_job(cls, settings: Settings, token: str) -> Session:
        """Inside a job's worker: the session with the job's own cluster, which is running,
        as the job's owner. The job's token, not the cluster's, is what user code holds."""
        if settings.backend == "gcp":
            url, pin = settings.main_url, settings.main_cert_sha256
        else:
            cluster = local.read(local.local_dir(settings.backend))
            url, pin = (cluster.url if cluster is not None else None), None
        if not url:
            raise ClusterUnavailableError(
                f"this job's cluster ({settings.backend}) cannot be found from inside it"
            )
        job_cluster = local.remote(url, token, pin)
        return cls._with_cluster(f"{url} as {JOB_TOKEN_ENV}", job_cluster)

    @classmethod
    def _with_cluster(cls, key: str, cluster: local.ClusterInfo) -> Session:
        """The cached session `key` names, made anew (the old one closed) if it holds
        another token or pin."""
        with cls._cache_lock:
            session = cls._cached.get(key)
            if session is None or session.cluster != cluster:
                if session is not None:
                    session.close()
                session = cls._cached[key] = cls(cluster)
            return session

    @classmethod
    def for_local_cluster(cls, backend: str = "local", fresh: bool = False) -> Session:
        """The session with this machine's cluster of `backend` ("local" or "docker"),
        which is started if it is not running."""
        with cls._cache_lock:
            return cls._for_local_cluster(backend, fresh)

    @classmethod
    def _for_local_cluster(cls, backend: str, fresh: bool) -> Session:
        root = local.local_dir(backend)
        key = str(root)
        session = cls._cached.get(key)
        stamp = local.stamp(root)
        if session is not None and not fresh:
            if stamp is not None and stamp == session.stamp:
                return session  # cluster.json is as it was: the same cluster
            if local.read(root) == session.cluster:
                session.stamp = stamp
                return session
        if session is not None:
            session.close()
        session = cls._cached[key] = cls(_current_cluster(root, backend), backend)
        session.stamp = local.stamp(root)
        if (ignored := local.size_ignored(session.cluster, None, backend)) is not None:
            warnings.warn(ignored, SettingIgnoredWarning, stacklevel=5)
        return session

    @classmethod
    def close_all(cls) -> None:
        """Close every cached session (at exit, or when a cluster is stopped)."""
        with cls._cache_lock:
            for session in cls._cached.values():
                session.close()
            cls._cached.clear()

    def upload_sources(self, sources: dict[str, bytes]) -> dict[str, str]:
        """Upload the source archives this cluster was not sent yet; their blob keys."""
        new = {r: archive for r, archive in sources.items() if r not in self.sent_sources}
        return upload_sources(self, new) if new else {}

    def submit(
        self,
        job_id: str,
        spec: dict[str, Any],
        function: bytes,
        payloads: Sequence[Payload],
        wait: float,
        *,
        resent: bool = False,
    ) -> bytes | None:
        """Start the job; the answer (frames) holds its id and the events of its first
        `wait` seconds, all of them if it is done by then. None when the job was taken but
        its answer lost: its events are read from the start. `resent`: an earlier call
        for this job went unanswered (the cluster it went to stopped), so a job of its id
        there is this one."""
        head: dict[str, Any] = {"job_id": job_id, "spec": spec}
        sizes = [len(p) if isinstance(p, bytes) else None for p in payloads]
        moved = fit(len(json.dumps(head)), len(function), sizes, self.job_request_limit)
        response, unanswered = self.answered(
            "POST",
            "/jobs",
            retry_for_s=RECONNECT_S,
            content=job_request(self, head, function, payloads, moved),
            params={"wait": wait},
            timeout_s=INSTALL_WAIT_S if _prepares(spec) else None,
        )
        if response.status_code == 409 and (unanswered or resent):
            return None  # an earlier try's answer was lost, but the cluster took the job
        try:
            if response.status_code >= 400:
                raise error_from(response, "POST /jobs")
        except PayloadTooLargeError as error:
            if error.limit is None or error.limit >= self.job_request_limit:
                raise
            self.job_request_limit = error.limit  # the cluster takes less than we thought
            return self.submit(job_id, spec, function, payloads, wait, resent=resent)
        return response.content


atexit.register(Session.close_all)


def _current_cluster(root: Path, backend: str) -> local.ClusterInfo:
    """This machine's cluster of `backend`, started if it is not running, and started
    anew if it runs another burla than this process: the two may not speak the same
    messages, and the cluster must run the code its jobs expect."""
    cluster = local.start(root, backend=backend)
    if cluster.install == install_stamp():  # None: a burla too old to say which it is
        return cluster
    local.stop(root)
    warnings.warn(
        f"this machine's {backend} cluster ran another burla than this process (burla was "
        "installed or changed since it started): it was stopped and started again; jobs "
        "it was running were stopped",
        ClusterRestartedWarning,
        stacklevel=6,
    )
    return local.start(root, backend=backend)


def _prepares(spec: dict[str, Any]) -> bool:
    """Whether the cluster may have to install packages or make an image for the job
    before it answers."""
    return bool(spec.get("packages") or spec.get("dockerfile") or spec.get("image"))
