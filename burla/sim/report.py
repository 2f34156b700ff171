"""A simulation's report for people: a summary table, the JSON, and a timeline plot."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary, as (label, value) rows."""
    jobs = report["jobs"]
    checks = report["checks"]
    rows = [
        ("jobs (succeeded)", f"{len(jobs)} ({sum(j['state'] == 'succeeded' for j in jobs)})"),
        ("time to first result (first job)", _seconds(report["time_to_first_result_s"])),
        ("time to all results (first job)", _seconds(report["time_to_all_results_s"])),
    ]
    if len(jobs) > 1:
        firsts = [j["time_to_first_result_s"] for j in jobs if j["time_to_first_result_s"]]
        if firsts:
            rows.append(
                (
                    "time to first result (median, worst)",
                    f"{_seconds(statistics.median(firsts))}, {_seconds(max(firsts))}",
                )
            )
    rows += [
        ("makespan", _seconds(report["makespan_s"])),
        ("CPUs working before any new node is ready", f"{report['cpus_now']:,}"),
        ("peak CPUs working", f"{report['peak_busy_cpus']:,}"),
        ("nodes started", f"{report['nodes_started']:,}"),
        ("new nodes that joined the first job", f"{report['new_nodes_for_job']:,}"),
        ("peak nodes", f"{report['peak_nodes']:,}"),
        ("CPU utilization (busy / paid for)", f"{report['cpu_utilization']:.0%}"),
        ("machines' time (cost)", _cost(report["node_seconds"], report["cost_usd"])),
        ("jobs' node time (cost)", _cost(report["jobs_node_seconds"], report["jobs_cost_usd"])),
        *_budget_rows(report),
        *_preemption_rows(report),
        ("inputs re-run after faults", f"{report['inputs_rerun']:,}"),
        ("Store calls failed (and retried)", f"{report['store_failures_injected']:,}"),
        ("blob store calls failed (and retried)", f"{report['blob_failures_injected']:,}"),
        ("answers to users lost (and asked again)", f"{report['answers_lost']:,}"),
        *_store_rows(report),
        *_cpu_rows(report),
        (
            "inputs lost / recorded twice",
            f"{checks['inputs_lost']} / {checks['inputs_recorded_twice']}",
        ),
        *_resume_rows(report),
        ("services that gave up (node_services / main_service)", _exits(report)),
        ("standby whole again", _restored(report)),
        ("wall time", f"{report['wall_s']:.1f} s"),
        ("simulated events", f"{report['events']:,} ({report['events_per_s']:,.0f}/s)"),
    ]
    return rows


def _cost(node_seconds: float, usd: float | None) -> str:
    money = "no price" if usd is None else f"${usd:,.2f}"
    return f"{node_seconds / 3600:,.1f} node-hours ({money})"


def _budget_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Jobs stopped at their max_cost, when any had one."""
    stopped = sum(1 for job in report["jobs"] if job["stopped_over_budget"])
    return [("jobs stopped at their max_cost", f"{stopped:,}")] if stopped else []


def _preemption_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Spot machines the cloud took back, and the nodes main_service counted lost for it."""
    if not report["preemptions"]:
        return []
    losses = report["node_losses"]
    other = sum(n for cause, n in losses.items() if cause != "preempted")
    return [
        ("spot VMs preempted", f"{report['preemptions']:,}"),
        ("nodes lost: preempted / other causes", f"{losses['preempted']:,} / {other:,}"),
    ]


def _resume_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Calls that stopped following their job, and the checks of resumed jobs."""
    jobs = report["jobs"]
    stopped = sum(1 for job in jobs if job["stopped_following"])
    resumed = [job for job in jobs if job["resumes"]]
    rows = [("calls that stopped before their job ended", f"{stopped:,}")] if stopped else []
    if resumed:
        checks = report["checks"]
        rows += [
            (
                "resumed jobs: inputs reused / run",
                f"{sum(j['inputs_reused'] for j in resumed):,} / "
                f"{sum(j['inputs_run'] for j in resumed):,}",
            ),
            (
                "resumed: inputs run again / not run / results not whole",
                f"{checks['resumed_inputs_run_again']} / {checks['resumed_inputs_not_run']} / "
                f"{checks['resumed_results_not_whole']}",
            ),
        ]
    return rows


def _exits(report: dict[str, Any]) -> str:
    """Services ended by a backend's failure that outlasted their retries."""
    nodes = report["checks"]["node_services_exited"]
    main = [f["at_s"] for f in report["faults"] if f["kind"] == "main_service_exit"]
    return f"{nodes:,} / " + (f"at {_seconds(main[0])}, the run ends" if main else "none")


def _store_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The Store profile's cost: its calls and the virtual time spent in them."""
    calls = report["store_calls"]
    if not calls:
        return []
    count = sum(c["calls"] for c in calls.values())
    seconds = sum(c["seconds"] for c in calls.values())
    slowest = max(calls, key=lambda name: calls[name]["seconds"])
    return [
        (
            f"{report['store_profile']} calls (time in them)",
            f"{count:,} ({_seconds(seconds)}; most in {slowest})",
        ),
        ("documents written or deleted", f"{report['store_writes']:,}"),
        (
            "writes refused for contention / too often",
            f"{report['store_writes_aborted']:,} / {report['blob_writes_refused']:,}",
        ),
        (
            "commits refused for the write rate / past deadline",
            f"{report['store_writes_exhausted']:,} / {report['store_calls_past_deadline']:,}",
        ),
    ]


def _cpu_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The services' own CPU, when it was charged: busy seconds and the longest queue."""
    cpu = report["service_cpu"]
    if cpu is None:
        return []
    main, nodes = cpu["main_service"], cpu["nodes"]
    return [
        (
            f"main_service CPU busy (longest queue), scale {cpu['scale']:g}",
            f"{_seconds(main['busy_s'])} ({_seconds(main['longest_queue_s'])})",
        ),
        (
            "node_services CPU busy, busiest node (longest queue)",
            f"{_seconds(nodes['busy_s'])}, {_seconds(nodes['busiest_node_busy_s'])} "
            f"({_seconds(nodes['longest_queue_s'])})",
        ),
    ]


def _restored(report: dict[str, Any]) -> str:
    if not report["standby_restored"]:
        return "no"
    return f"yes, at {_seconds(report['standby_restored_at_s'])}"


def print_summary(report: dict[str, Any], console: Console | None = None) -> None:
    table = Table(
        title=f"burla sim {report['scenario']} (seed {report['seed']})", show_header=False
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in summary_rows(report):
        table.add_row(label, value)
    console = console or Console()
    console.print(table)
    for name, price in report["prices"].items():
        each = "no price" if price["usd_per_hour"] is None else f"${price['usd_per_hour']:,.4f}"
        console.print(f"{name}: {each} an hour, {price['source']}", highlight=False)


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=1) + "\n")


def plot(report: dict[str, Any], path: Path) -> None:
    """Nodes by state (stacked) above, CPUs working below; jobs and faults marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = {key: list(values) for key, values in report["timeline"].items()}
    if timeline["t"]:  # hold the last state a little, so that it shows (steps are "post")
        span = timeline["t"][-1] - timeline["t"][0]
        for key, values in timeline.items():
            values.append(values[-1] + max(span, 60) * 0.02 if key == "t" else values[-1])
    minutes = [t / 60 for t in timeline["t"]]
    figure, (nodes, cpus) = plt.subplots(2, 1, sharex=True, figsize=(10, 6.5))
    nodes.stackplot(
        minutes,
        timeline["busy"],
        timeline["ready"],
        timeline["booting"],
        labels=["busy (on a job)", "ready (standby)", "booting"],
        colors=["#d62728", "#2ca02c", "#aec7e8"],
        step="post",
    )
    nodes.set_ylabel("nodes")
    nodes.legend(loc="upper right", fontsize="small")
    nodes.set_title(f"burla sim {report['scenario']}: nodes and CPUs over virtual time")
    cpus.fill_between(
        minutes,
        timeline["busy_cpus"],
        step="post",
        color="#1f77b4",
        alpha=0.8,
        label="CPUs working",
    )
    cpus.step(
        minutes,
        timeline["machine_cpus"],
        where="post",
        color="black",
        linewidth=1,
        label="CPUs of machines up or booting",
    )
    cpus.set_ylabel("CPUs")
    cpus.set_xlabel("virtual minutes")
    cpus.legend(loc="upper right", fontsize="small")
    for job in report["jobs"][:50]:
        for axis in (nodes, cpus):
            axis.axvline(job["arrived_s"] / 60, color="gray", linewidth=0.6, linestyle=":")
    for fault in report["faults"]:
        for axis in (nodes, cpus):
            axis.axvline(fault["at_s"] / 60, color="black", linewidth=1, linestyle="--")
    for axis in (nodes, cpus):
        axis.set_ylim(bottom=0)
        axis.set_xlim(left=0, right=max(minutes[-1], 1 / 60) if minutes else 1)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
