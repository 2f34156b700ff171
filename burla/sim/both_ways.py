"""A scenario with spot node types run both ways: as written, and with every node type
on-demand and never preempted, so that one table shows what spot VMs save against the
time their preemptions cost."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from burla.core.errors import InvalidRequestError
from burla.sim import run
from burla.sim.scenario import Scenario


def on_demand(scenario: Scenario) -> Scenario:
    """The same scenario on on-demand machines: no spot type, no preemption."""
    if not any(node_type.spot for node_type in scenario.node_types):
        raise InvalidRequestError(
            f"scenario {scenario.name!r} has no spot node type to compare with on-demand "
            "ones; give a node type spot: true (and preemptions_per_hour)"
        )
    types = tuple(
        node_type.model_copy(update={"spot": False, "preemptions_per_hour": 0.0})
        for node_type in scenario.node_types
    )
    return scenario.model_copy(update={"node_types": types})


def run_both_ways(scenario: Scenario) -> dict[str, Any]:
    """Both reports ("spot", "on_demand") and what spot saves and costs in time."""
    plain = on_demand(scenario)  # refused before anything runs without a spot type
    spot_report = run.run(scenario)
    on_demand_report = run.run(plain)
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "spot": spot_report,
        "on_demand": on_demand_report,
        "savings": savings(spot_report, on_demand_report),
    }


def savings(spot: dict[str, Any], on_demand: dict[str, Any]) -> dict[str, Any]:
    """The machines' cost saved (USD and share) and the makespan added, spot against
    on-demand; None where a run has no price or no makespan."""
    usd_saved = share = None
    if spot["cost_usd"] is not None and on_demand["cost_usd"] is not None:
        usd_saved = on_demand["cost_usd"] - spot["cost_usd"]
        share = usd_saved / on_demand["cost_usd"] if on_demand["cost_usd"] else None
    added = None
    if spot["makespan_s"] is not None and on_demand["makespan_s"] is not None:
        added = spot["makespan_s"] - on_demand["makespan_s"]
    return {"cost_usd_saved": usd_saved, "cost_share_saved": share, "makespan_s_added": added}


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _usd(usd: float | None) -> str:
    return "no price" if usd is None else f"${usd:,.2f}"


def comparison_rows(both: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(what, spot, on-demand) rows of the comparison."""
    spot, plain = both["spot"], both["on_demand"]

    def row(label: str, show: Any) -> tuple[str, str, str]:
        return label, show(spot), show(plain)

    return [
        row("makespan", lambda r: _minutes(r["makespan_s"])),
        row(
            "machines' cost (node-hours)",
            lambda r: f"{_usd(r['cost_usd'])} ({r['node_seconds'] / 3600:,.1f})",
        ),
        row("jobs' cost", lambda r: _usd(r["jobs_cost_usd"])),
        row(
            "jobs succeeded",
            lambda r: f"{sum(j['state'] == 'succeeded' for j in r['jobs'])} of {len(r['jobs'])}",
        ),
        row("spot VMs preempted", lambda r: f"{r['preemptions']:,}"),
        row("nodes lost as preempted", lambda r: f"{r['node_losses']['preempted']:,}"),
        row("inputs re-run", lambda r: f"{r['inputs_rerun']:,}"),
        row(
            "inputs lost / recorded twice",
            lambda r: f"{r['checks']['inputs_lost']} / {r['checks']['inputs_recorded_twice']}",
        ),
    ]


def print_comparison(both: dict[str, Any], console: Console | None = None) -> None:
    table = Table(title=f"burla sim {both['scenario']} both ways (seed {both['seed']})")
    table.add_column("")
    table.add_column("spot", justify="right")
    table.add_column("on-demand", justify="right")
    for label, spot, plain in comparison_rows(both):
        table.add_row(label, spot, plain)
    console = console or Console()
    console.print(table)
    saved = both["savings"]
    if saved["cost_usd_saved"] is not None and saved["makespan_s_added"] is not None:
        share = "" if saved["cost_share_saved"] is None else f" ({saved['cost_share_saved']:.0%})"
        console.print(
            f"spot saves {_usd(saved['cost_usd_saved'])}{share} of the machines' cost and "
            f"takes {saved['makespan_s_added'] / 60:+.1f} min of makespan",
            highlight=False,
        )
