"""What people see of the cluster and its jobs, as JSON: built from main_service's state
when someone asks (a `burla` command, an open dashboard), never on a job's own path."""

from __future__ import annotations

from collections import Counter
from typing import Any

from burla.core import stream_wire
from burla.core.inputs import InputStatus
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.service import MainService
from burla.services.main_service.users import ADMIN, may_see

STATUS_LETTERS = {
    InputStatus.QUEUED: "q",
    InputStatus.LEASED: "r",  # a worker holds it: running, or next in its batch
    InputStatus.RUNNING: "r",
    InputStatus.SUCCEEDED: "s",
    InputStatus.FAILED: "f",
    InputStatus.CANCELED: "c",
}
"""One letter per input: a job's inputs fit in one short string."""


def job_summary(run: JobRun, now: float) -> dict[str, Any]:
    """A job as a list of jobs shows it, its node time and cost up to `now` among it."""
    counts = Counter(record.status.value for record in run.machine.inputs)
    finished = sum(n for status, n in counts.items() if InputStatus(status).finished)
    return {
        "job_id": run.spec.job_id,
        "state": run.state.value,
        "n_inputs": run.spec.n_inputs,
        "finished": finished,
        **run.counts(),
        "failure": run.failure,
        "inputs": dict(counts),
        "func_cpu": run.spec.func_cpu,
        "image": run.spec.image,
        "submitted_at": run.submitted_at,
        "error": run.error,
        "owner": run.owner,
        "cost": run.cost(now),
        "max_cost": run.spec.max_cost,
        "budget_stop": run.budget_stop,
    }


def running_jobs(service: MainService, user: str = ADMIN) -> list[dict[str, Any]]:
    """Jobs of `user`'s (the admin: everyone's) main_service holds in memory (running, or
    ended in the last minutes), newest first."""
    runs = [run for run in service.jobs.values() if may_see(user, run.owner)]
    runs.sort(key=lambda run: run.submitted_at, reverse=True)
    now = service.clock.now()
    return [job_summary(run, now) for run in runs]


def busy_cpus(run: JobRun) -> int:
    """CPUs of the workers that hold inputs of this job now."""
    holding = sum(1 for worker in run.machine.workers.values() if worker.leased)
    return holding * run.spec.func_cpu


def cluster_overview(service: MainService, user: str = ADMIN) -> dict[str, Any]:
    """The cluster as `user` may see it: nodes and CPUs, and only their own jobs' ids."""
    status = service.cluster_status()
    if user != ADMIN:
        # Only the ids of jobs main_service holds as the user's: a node can still name a
        # job main_service has let go of, whoever's it was.
        own = {j for j, run in service.jobs.items() if may_see(user, run.owner)}
        status["jobs"] = {j: state for j, state in status["jobs"].items() if j in own}
        for node in [*status["nodes"], *status["node_losses"]["recent"]]:
            if node["job_id"] is not None and node["job_id"] not in own:
                node["job_id"] = "(another user's)"
    by_type: dict[str, dict[str, int]] = {}
    for node in status["nodes"]:
        states = by_type.setdefault(node["type"], {})
        states[node["state"]] = states.get(node["state"], 0) + 1
    running = [run for run in service.jobs.values() if not run.state.finished]
    return {
        **status,
        "nodes_by_type": by_type,
        "cpus": sum(node["cpus"] for node in status["nodes"]),
        "cpus_busy": sum(busy_cpus(run) for run in running),
        "jobs_running": len(running),
    }


def input_statuses(run: JobRun, after: int = -1, limit: int = 1000) -> list[dict[str, Any]]:
    """Inputs after index `after`, each with its status, tries and the worker on it."""
    records = run.machine.inputs[after + 1 : after + 1 + limit]
    return [
        {
            "index": index,
            "status": record.status.value,
            "attempts": record.attempts,
            "worker": record.worker,
        }
        for index, record in enumerate(records, start=after + 1)
    ]


def status_letters(run: JobRun, limit: int) -> str:
    return "".join(STATUS_LETTERS[record.status] for record in run.machine.inputs[:limit])


def job_errors(run: JobRun) -> list[dict[str, Any]]:
    """Every input that failed for good, with why, as text."""
    errors = []
    for event, payload in run.stream:
        if isinstance(event, stream_wire.JobResult) and event.kind != "ok":
            text = run.failure_text(event.index, event.kind, payload)
            errors.append({"input": event.index, "stream": "error", "text": text})
    return errors
