"""Resumed jobs in a simulation: what each resume ran and reused, the checks that it ran
exactly the inputs its job had no result for and gave its caller every result, and what
the first run, the resume and a full re-run with the fix cost.

A full re-run is simulated, not estimated: the same scenario again, each call that was
resumed made once with the fix (no input raises, no client dies), as a user without
`resume=` would call it again.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from rich.console import Console
from rich.table import Table

from burla.sim.recorder import JobLog
from burla.sim.scenario import JobArrival, RaisingInputs, Scenario


def has_resumes(scenario: Scenario) -> bool:
    return any(job.resume is not None for job in scenario.jobs)


def rerun_whole(scenario: Scenario) -> Scenario:
    """The scenario with each call that is resumed made once, whole and fixed."""

    def whole(job: JobArrival) -> JobArrival:
        if job.resume is None:
            return job
        fixed = RaisingInputs() if job.resume.fixed else job.raises
        return job.model_copy(update={"resume": None, "client_dies_s": None, "raises": fixed})

    jobs = tuple(whole(job) for job in scenario.jobs)
    return scenario.model_copy(update={"name": f"{scenario.name} (re-run whole)", "jobs": jobs})


def to_run(failed_only: bool, first: Mapping[int, str], n_inputs: int) -> set[int]:
    """The inputs a resume must run, by the first job's results in the Store (index ->
    kind): those without a success, or (`failed_only`) those that failed."""
    if failed_only:
        return {index for index, kind in first.items() if kind != "ok"}
    return {index for index in range(n_inputs) if first.get(index) != "ok"}


def check(
    log: JobLog,
    failed_only: bool,
    first: Mapping[int, str],
    started: Set[int],
) -> dict[str, int]:
    """What went wrong with one resumed call (all 0 when nothing did): inputs that had a
    result in the first job and ran again, inputs without one that did not run, and
    inputs whose result its caller did not get exactly once (an input `failed_only`
    skips has none)."""
    due = to_run(failed_only, first, log.n_inputs)
    expected = {index for index in range(log.n_inputs) if not failed_only or index in due}
    expected |= {index for index, kind in first.items() if kind == "ok"}
    received = set(log.results)
    return {
        "ran_again": len(started - due),
        "not_run": len(due - started),
        "results_not_whole": len(expected ^ received) + sum(c > 1 for c in log.results.values()),
    }


def comparison(report: dict[str, Any], whole: dict[str, Any]) -> list[dict[str, Any]]:
    """For each resumed job: the first run's, the resume's and a full re-run's inputs
    run, node-hours and cost."""
    jobs = {job["job_id"]: job for job in report["jobs"]}
    rows = []
    for again in report["jobs"]:
        if again["resumes"] is None:
            continue
        first = jobs[again["resumes"]]
        # The re-run scenario plans the same calls, so the first job keeps its id.
        rerun = next(job for job in whole["jobs"] if job["job_id"] == first["job_id"])
        rows.append(
            {
                "job_id": first["job_id"],
                "resumed_as": again["job_id"],
                "n_inputs": first["n_inputs"],
                "first": _run(first),
                "resume": _run(again),
                "both": {
                    "node_seconds": first["node_seconds"] + again["node_seconds"],
                    "cost_usd": _sum(first["cost_usd"], again["cost_usd"]),
                    "makespan_s": again["arrived_s"]
                    + (again["duration_s"] or 0.0)
                    - first["arrived_s"],
                },
                "full_rerun": {**_run(rerun), "makespan_s": rerun["duration_s"]},
            }
        )
    return rows


def _run(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "state": job["state"],
        "inputs_run": job["inputs_run"],
        "inputs_reused": job["inputs_reused"],
        "inputs_failed": job["inputs_failed"],
        "results": job["results_stored"],
        "node_seconds": job["node_seconds"],
        "cost_usd": job["cost_usd"],
        "stopped_following": job["stopped_following"],
        "duration_s": job["duration_s"],
    }


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _usd(usd: float | None) -> str:
    return "no price" if usd is None else f"${usd:,.2f}"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:,.2f}"


def _client(run: dict[str, Any]) -> str:
    if run["stopped_following"] is None:
        return "followed it to its end"
    return f"{run['stopped_following']} at {run['duration_s'] / 60:.1f} min"


def print_comparison(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    """Per resumed job: the first run, the resume and a full re-run side by side, and
    what resuming saved."""
    console = console or Console()
    for row in rows:
        first, again, rerun = row["first"], row["resume"], row["full_rerun"]
        table = Table(title=f"{row['job_id']} ({row['n_inputs']:,} inputs), resumed")
        for column in ("", "first run", "resume", "full re-run"):
            table.add_column(column, justify="right" if column else "left")
        table.add_row("state", first["state"], again["state"], rerun["state"])
        table.add_row("its caller", _client(first), _client(again), _client(rerun))
        for label, key in (
            ("inputs run", "inputs_run"),
            ("results reused", "inputs_reused"),
            ("inputs failed", "inputs_failed"),
            ("results kept", "results"),
        ):
            table.add_row(label, f"{first[key]:,}", f"{again[key]:,}", f"{rerun[key]:,}")
        table.add_row(
            "node-hours",
            _hours(first["node_seconds"]),
            _hours(again["node_seconds"]),
            _hours(rerun["node_seconds"]),
        )
        table.add_row(
            "cost", _usd(first["cost_usd"]), _usd(again["cost_usd"]), _usd(rerun["cost_usd"])
        )
        console.print(table)
        with_rerun = _sum(first["cost_usd"], rerun["cost_usd"])
        if row["both"]["cost_usd"] is not None and with_rerun is not None:
            console.print(
                f"the resume ran {again['inputs_run']:,} of {row['n_inputs']:,} inputs for "
                f"{_usd(again['cost_usd'])}, where running them all again with the fix costs "
                f"{_usd(rerun['cost_usd'])}: the first run and the resume cost "
                f"{_usd(row['both']['cost_usd'])}, the first run and a full re-run "
                f"{_usd(with_rerun)}",
                highlight=False,
            )
