"""Resuming a job from what the cluster kept of it, its function and its inputs, with no
Python session of its caller's (`burla jobs rerun`): a new job of the same inputs, in
which those without a successful result run again and the others keep theirs (see
remote_parallel_map's `resume=`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from burla.client.connection import Connection
from burla.client.map import Submission, _settings
from burla.client.recent_jobs import recent, recent_jobs_path
from burla.client.session import Session
from burla.core import wire
from burla.core.errors import JobError, JobInterruptedError, NotFoundError, ResumeError

__all__ = ["Rerun", "kept_inputs", "rerun"]

NOT_KEPT = (
    "finished jobs are removed, the longest finished first, once their results pass the "
    "cluster's BURLA_RESULTS_MAX_GB"
)
SPEC_KEPT = (
    "func_cpu",
    "func_ram",
    "func_gpu",
    "max_parallelism",
    "retries",
    "grow_memory",
    "timeout_s",
    "python_version",
)
"""What a rerun takes from the job's spec. Its packages are worked out again from its
function, as for any call; its image is the default one of its Python."""


@dataclass(frozen=True)
class Rerun:
    job_id: str
    """The new job."""
    resumes: str
    job: dict[str, Any]
    """The new job once it ended, as `GET /jobs/{id}` tells it (its state and counts)."""


def rerun(
    job_id: str, *, failed_only: bool = False, backend: str | None = None, spinner: bool = False
) -> Rerun:
    """Run the inputs of job `job_id` that have no successful result again, in a new job
    that takes the other results from it, and wait for it to end. With `failed_only`,
    only those that failed: those the job never ran get no result in the new job."""
    settings = _settings(backend)
    session = Session.for_settings(settings)
    try:
        old = session.call("GET", f"/jobs/{job_id}").json()
        if old["state"] == "running":
            raise ResumeError(
                f"job {job_id} is still running: wait for its results (`burla jobs result "
                f"{job_id}`), or cancel it (`burla jobs cancel {job_id}`) and rerun it then"
            )
        function = session.call("GET", f"/jobs/{job_id}/function").content
        payloads = kept_inputs(session, job_id, int(old["spec"]["n_inputs"]))
    except NotFoundError as error:
        raise ResumeError(f"job {job_id} cannot be rerun: {error}") from error
    spec: dict[str, Any] = {key: old["spec"][key] for key in SPEC_KEPT if key in old["spec"]}
    spec |= {"n_inputs": len(payloads), "resumes": job_id, "resume_failed_only": failed_only}
    remembered = recent(recent_jobs_path(settings))
    name = next((job.function for job in remembered if job.job_id == job_id), job_id)
    submission = Submission(settings, name, function, payloads, spec)
    new_id = submission.start()
    try:
        for _ in submission.follow(ordered=False, spinner=spinner, return_exceptions=True):
            pass
    except JobInterruptedError:
        raise
    except JobError:
        pass  # inputs not run (failed_only), or the job failed as a whole: its record says
    assert submission.session is not None
    return Rerun(new_id, job_id, submission.session.call("GET", f"/jobs/{new_id}").json())


def kept_inputs(connection: Connection, job_id: str, n_inputs: int) -> list[bytes]:
    """Every input of the job as it was sent (its pickled arguments), as the cluster kept
    them; NotFoundError if it does not keep them all."""
    found: list[bytes] = []
    after: int | None = -1
    while after is not None:
        answer = connection.call("GET", f"/jobs/{job_id}/inputs", params={"after": after})
        header, payload = next(wire.decode_all(answer.content))
        rows = wire.results_in_row(header["indices"], header["kinds"], header["sizes"], payload)
        for index, kind, data in rows:
            if index != len(found):
                raise NotFoundError(f"its input {len(found)} is not kept ({NOT_KEPT})")
            if kind == "blob":
                data = connection.call("GET", f"/jobs/{job_id}/inputs/{index}").content
            found.append(data)
        after = header["next"]
    if len(found) != n_inputs:
        raise NotFoundError(f"the cluster keeps {len(found)} of its {n_inputs} inputs ({NOT_KEPT})")
    return found
