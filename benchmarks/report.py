"""Turn a run's results.json document into results.md (tables) and chart.png (bars)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from benchmarks import sim_numbers

COMPARED_WITH = {"W3_up": "W3_cold"}
"""Where peers have nothing to measure (n/a), burla's ratio is to their value here."""

CELL = {"not-installed": "not installed", "failed": "failed", "n/a": "n/a"}


def markdown(document: dict[str, Any]) -> str:
    """The results as markdown: medians, burla's ratio to the best peer, spreads, failures."""
    results = by_pair(document)
    workloads = run_workloads(document)
    systems = document["systems"]
    host = document["host"]
    versions = ", ".join(f"{k} {v or 'not installed'}" for k, v in document["packages"].items())
    lines = [
        f"# Benchmarks, {document['started_utc']}",
        "",
        f"{host['cpu_count']} CPUs ({host['cpus_usable']} usable), {host['memory_gb']} GB, "
        f"Python {host['python']} on {host['platform']}; load average at start "
        f"{fmt_load(host['load_average_start'])}, at end {fmt_load(host.get('load_average_end'))}.",
        f"Packages: {versions}.",
        f"Run took {document.get('elapsed_s', 0):.0f} s. Each pair ran in a fresh interpreter; "
        f"median of {document['repeat']} repetitions, in seconds (W2 in milliseconds); "
        "lower is better. `burla / best peer` is burla's median divided by the fastest "
        "peer's: below 1 burla is faster.",
        "",
        table_header(["workload", *systems, "burla / best peer"]),
    ]
    for workload in workloads:
        spec = document["workloads"][workload]
        cells = [cell(results.get((workload, system)), spec["unit"]) for system in systems]
        label = f"{workload} {spec['title']} ({spec['unit']})"
        lines.append(table_row([label, *cells, ratio_cell(results, workload, systems)]))
    lines += [
        "",
        "## Spread (min - max over repetitions)",
        "",
        table_header(["workload", *systems]),
    ]
    for workload in workloads:
        unit = document["workloads"][workload]["unit"]
        cells = [spread(results.get((workload, system)), unit) for system in systems]
        lines.append(table_row([workload, *cells]))
    lines += ["", "## Notes", ""]
    for workload in workloads:
        if (ideal := document["workloads"][workload]["ideal_s"]) is not None:
            lines.append(f"- {workload}: the ideal (no overhead at all) is {ideal:g} s.")
    for workload, other in COMPARED_WITH.items():
        if workload in workloads:
            lines.append(
                f"- {workload} (marked *): here peers start their pool in the process that "
                f"uses it, so burla's ratio is to the best peer's {other} (a fresh process "
                "that starts its own pool)."
            )
    loops = document["calibration"]
    lines.append(
        f"- W6 calibration: {loops['cpu_loops']:,} loops per call, aimed at "
        f"{loops['target_s']:g} s; one call timed {loops['one_call_s']:.3f} s at the start."
    )
    problems = [r for r in document["pairs"] if r["status"] in ("failed", "not-installed")]
    if problems:
        lines += ["", "## Not run or failed", ""]
        lines += [
            f"- {r['workload']} / {r['system']}: {r['status']}: {one_line(r.get('error', ''))}"
            for r in problems
        ]
    if inside := burla_inside(document.get("burla_services")):
        lines += ["", inside.rstrip("\n")]
    if simulated := sim_numbers.markdown(document.get("simulator")):
        lines += ["", simulated.rstrip("\n")]
    leftovers = [r for r in document["pairs"] if r.get("leftovers")]
    if leftovers:
        lines += ["", "## Processes left behind by a pair (stopped by the runner)", ""]
        lines += [
            f"- {r['workload']} / {r['system']}: {'; '.join(r['leftovers'])}" for r in leftovers
        ]
    return "\n".join(lines) + "\n"


def burla_inside(numbers: dict[str, Any] | None) -> str:
    """Where burla's time goes: CPU per process, and a warm call hop by hop."""
    if not numbers:
        return ""
    lines = ["## Inside burla", ""]
    cpu = numbers.get("service_cpu", {})
    if "error" in cpu:
        lines.append(f"- CPU per process: {cpu['error']}")
    elif cpu:
        big, small = cpu["throughput"], cpu["latency"]
        roles = [r for r in big["cpu_us_per_input"] if r != "wall"]
        lines += [
            f"CPU of each process (user + system) over {big['jobs']} jobs of "
            f"{big['inputs_per_job']:,} trivial inputs and {small['jobs']} one-input jobs; "
            f"{cpu['inputs_per_s_per_main_cpu']:,} inputs/s per main_service CPU.",
            "",
            table_header(["", *roles, "wall"]),
            table_row(
                [
                    "us per input",
                    *[f"{big['cpu_us_per_input'][r]:g}" for r in roles],
                    f"{big['cpu_us_per_input']['wall']:g}",
                ]
            ),
            table_row(
                [
                    "us per one-input job",
                    *[f"{small['cpu_us_per_job'][r]:g}" for r in roles],
                    f"{small['cpu_us_per_job']['wall']:g}",
                ]
            ),
        ]
    hops = numbers.get("hops", {})
    if "error" in hops:
        lines.append(f"- A warm call's hops: {hops['error']}")
    elif hops:
        lines += [
            "",
            f"A warm one-input call, hop by hop (medians over {hops['calls_in_usual_order']} "
            f"calls; the median whole call took {hops['median_total_us']:,} us):",
            "",
            table_header(["from", "to", "us"]),
        ]
        lines += [
            table_row([step["from"], step["to"], f"{step['median_us']:,}"])
            for step in hops["steps"]
        ]
    return "\n".join(lines) + "\n"


def by_pair(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["workload"], r["system"]): r for r in document["pairs"]}


def run_workloads(document: dict[str, Any]) -> list[str]:
    """The workloads that have results, in the table order of the workload definitions."""
    present = {r["workload"] for r in document["pairs"]}
    return [name for name in document["workloads"] if name in present]


def cell(result: dict[str, Any] | None, unit: str) -> str:
    if result is None:
        return "-"
    if result["status"] != "ok":
        return CELL.get(result["status"], result["status"])
    return number(result["median_s"] * scale(unit))


def spread(result: dict[str, Any] | None, unit: str) -> str:
    if result is None or result["status"] != "ok":
        return cell(result, unit)
    return f"{number(result['min_s'] * scale(unit))} - {number(result['max_s'] * scale(unit))}"


def ratio_cell(
    results: dict[tuple[str, str], dict[str, Any]], workload: str, systems: list[str]
) -> str:
    burla = results.get((workload, "burla"))
    if burla is None or burla["status"] != "ok":
        return "-"
    against = COMPARED_WITH.get(workload, workload)
    peers = [
        (r["median_s"], system)
        for system in systems
        if system != "burla"
        and (r := results.get((against, system))) is not None
        and r["status"] == "ok"
    ]
    if not peers:
        return "-"
    best, peer = min(peers)
    mark = "*" if against != workload else ""
    return f"{number(burla['median_s'] / best)} ({peer}){mark}"


def scale(unit: str) -> float:
    return 1000.0 if unit == "ms" else 1.0


def number(value: float) -> str:
    """Three significant digits, without exponents."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def fmt_load(load: Any) -> str:
    return "?" if not load else " / ".join(f"{x:.2f}" for x in load)


def one_line(text: str) -> str:
    return " ".join(str(text).split())[:400]


def table_header(names: list[str]) -> str:
    return table_row(names) + "\n" + table_row(["---", *["---:"] * (len(names) - 1)])


def table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def write_chart(document: dict[str, Any], path: Path) -> str | None:
    """Grouped bars (median, whiskers min-max) per workload on a log scale, all in seconds;
    None when written, else why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    results = by_pair(document)
    workloads = run_workloads(document)
    systems = document["systems"]
    width = 0.8 / len(systems)
    figure, axes = plt.subplots(
        figsize=(max(8.0, 1.7 * len(workloads) + 2), 6.0), layout="constrained"
    )
    for j, system in enumerate(systems):
        for i, workload in enumerate(workloads):
            x = i - 0.4 + width * (j + 0.5)
            result = results.get((workload, system))
            if result is None or result["status"] != "ok":
                label = cell(result, "s").replace("not installed", "not inst.")
                axes.text(
                    x,
                    0.01,
                    label,
                    rotation=90,
                    fontsize=7,
                    ha="center",
                    va="bottom",
                    transform=axes.get_xaxis_transform(),
                )
                continue
            median = result["median_s"]
            whiskers = [[median - result["min_s"]], [result["max_s"] - median]]
            axes.bar(
                x,
                median,
                width,
                color=f"C{j}",
                yerr=whiskers,
                capsize=2,
                label=system if i == next_ok(results, system, workloads) else None,
            )
    for i, workload in enumerate(workloads):
        if (ideal := document["workloads"][workload]["ideal_s"]) is not None:
            axes.hlines(ideal, i - 0.45, i + 0.45, colors="black", linestyles="dashed", lw=1)
    axes.set_yscale("log")
    axes.set_xticks(range(len(workloads)))
    axes.set_xticklabels(
        [
            f"{name}\n" + textwrap.fill(document["workloads"][name]["title"], 22)
            for name in workloads
        ],
        fontsize=7,
    )
    axes.set_ylabel("median seconds (log scale; whiskers: min-max)")
    axes.set_title(
        f"burla vs peers, {document['host']['cpu_count']} CPUs, {document['started_utc']} "
        "(dashed: ideal)"
    )
    if axes.get_legend_handles_labels()[0]:
        figure.legend(fontsize=8, ncol=min(len(systems), 7), loc="outside lower center")
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return None


def next_ok(
    results: dict[tuple[str, str], dict[str, Any]], system: str, workloads: list[str]
) -> int | None:
    """The first workload index where `system` has a bar (where its legend entry goes)."""
    for i, workload in enumerate(workloads):
        result = results.get((workload, system))
        if result is not None and result["status"] == "ok":
            return i
    return None
