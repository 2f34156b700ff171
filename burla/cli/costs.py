"""How `burla` shows what jobs cost: a job's node time, its cost and its max_cost, and
each user's total (see burla.core.cost for how they are counted)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

from burla.cli.output import table
from burla.core.cost import costs_by_user, usd_text


def cost_lines(job: dict[str, Any]) -> list[str]:
    """What `burla jobs show` says of a job's cost."""
    cost = job.get("cost")
    if cost is None:
        return ["cost: not recorded (the job ran on a burla that did not count it)"]
    basis = cost["basis"] or "it never held a node"
    lines = [
        f"node time: {cost['node_seconds']:,.1f} node-seconds; cost {usd_text(cost['usd'])} "
        f"({basis})"
    ]
    max_cost = (job.get("spec") or {}).get("max_cost")
    if max_cost is not None:
        lines.append(f"max_cost: ${max_cost:g}")
    stop = job.get("budget_stop")
    if stop is not None:
        lines.append(
            f"stopped at its max_cost: its nodes came to cost {usd_text(stop['cost'])} "
            f"({stop['node_seconds']:,.1f} node-seconds) after {stop['finished']} inputs "
            f"finished; their results: burla jobs result {job['job_id']} --return-exceptions"
        )
    return lines


def show_totals(jobs: Iterable[dict[str, Any]]) -> None:
    """A line per user under `burla jobs`: the node time and cost of the jobs listed."""
    counted = [
        (job.get("owner", ""), job["cost"]["node_seconds"], job["cost"]["usd"])
        for job in jobs
        if job.get("cost") is not None
    ]
    for total in costs_by_user(counted):
        click.echo(f"{total.user}: {_total_text(total.jobs, total.node_seconds, total.usd)}")


def show_user_costs(users: list[dict[str, Any]]) -> None:
    """`burla users costs`: each user's jobs together."""
    rows = [
        (
            user["user"],
            user["jobs"],
            f"{user['node_seconds']:,.1f}",
            usd_text(user["usd"])
            + (f" (+{user['unpriced']} unpriced)" if user["unpriced"] else ""),
        )
        for user in users
    ]
    table(("user", "jobs", "node-seconds", "cost", "jobs without a price"), rows)


def _total_text(jobs: int, node_seconds: float, usd: float) -> str:
    plural = "s" if jobs != 1 else ""
    return f"{jobs} job{plural} listed, {node_seconds:,.1f} node-seconds, {usd_text(usd)}"
