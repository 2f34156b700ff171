"""The jobs this user started from this machine lately, remembered in a small file in
burla's folder (~/.burla/jobs.jsonl; the setting jobs_file, $BURLA_JOBS_FILE, names
another): how a notebook or script that crashed finds the job it lost (`burla jobs
--mine`), to resume it (`resume=`, `burla jobs rerun`). Calls made from inside a job are
not remembered.

A job is remembered as it is submitted, before the cluster answers: one JSON line per
job, appended in one write, so that processes starting jobs at once do not mix their
lines. The file keeps the last KEPT jobs. Remembering is a convenience: a file that
cannot be written never fails a job.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from burla.client import local
from burla.core.settings import Settings

KEPT = 100
FILE_NAME = "jobs.jsonl"


@dataclass(frozen=True)
class RecentJob:
    job_id: str
    submitted_at: float
    function: str
    """The function's name, as its code calls it."""
    cluster: str
    """Which cluster it went to (cluster_of)."""
    resumes: str | None = None
    """The job it resumes, if it does."""


def recent_jobs_path(settings: Settings) -> Path:
    if settings.jobs_file:
        return Path(settings.jobs_file).expanduser()
    return Path.home() / ".burla" / FILE_NAME


def cluster_of(settings: Settings) -> str:
    """What names the cluster `settings` reach: a cloud cluster's address, or the
    directory of this machine's cluster of a backend."""
    if settings.backend == "gcp":
        return str(settings.main_url or "gcp")
    return f"{settings.backend}:{local.local_dir(settings.backend)}"


def remember(job: RecentJob, path: Path) -> None:
    """Add `job` to the file (keeping the last KEPT jobs); nothing if it cannot be written."""
    line = (json.dumps(vars(job)) + "\n").encode()  # its fields: plain values, none nested
    with contextlib.suppress(OSError):
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the first job: no folder yet
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, line)
            size = os.fstat(descriptor).st_size
        finally:
            os.close(descriptor)
        if size > 2 * KEPT * len(line):  # about twice what it keeps: cut it back
            _keep_last(path, KEPT)


def recent(path: Path, cluster: str | None = None) -> list[RecentJob]:
    """The remembered jobs, newest first; only those of `cluster` when given."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    found = [job for job in map(_parsed, lines) if job is not None]
    found.reverse()
    return [job for job in found if cluster is None or job.cluster == cluster][:KEPT]


def _parsed(line: str) -> RecentJob | None:
    """A line's job; None for one that is not (cut short by a crash, say)."""
    try:
        fields: Any = json.loads(line)
        return RecentJob(**fields)
    except (ValueError, TypeError):
        return None


def _keep_last(path: Path, count: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
        file.writelines(lines[-count:])
    temporary.replace(path)
