"""`burla sim SCENARIO`: run a scenario, print its summary, write its JSON and plot."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from burla.sim import report, resumes, run, scenario


def simulate(
    name_or_path: str,
    json_out: str | None,
    plot_out: str | None,
    *,
    exit_when_done: bool = False,
) -> dict[str, Any]:
    """With `exit_when_done` (the command line), the process exits as soon as the report
    is out, without tearing the simulated cluster down: for 1,000 nodes that would take
    longer than most whole runs."""
    chosen = scenario.load(name_or_path)
    # A scenario whose calls are resumed is first run with each of them made whole,
    # with the fix: what the resumes are compared with.
    whole = run.run(resumes.rerun_whole(chosen)) if resumes.has_resumes(chosen) else None

    def publish(result: dict[str, Any]) -> None:
        if whole is not None:
            result["resumes"] = resumes.comparison(result, whole)
        if json_out == "-":  # the report for a script, on stdout
            sys.stdout.write(json.dumps(result, indent=1) + "\n")
        else:
            report.print_summary(result)
            if whole is not None:
                resumes.print_comparison(result["resumes"])
        if json_out and json_out != "-":
            report.write_json(result, Path(json_out))
        if plot_out:
            report.plot(result, Path(plot_out))
        if exit_when_done:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    return run.run(chosen, on_report=publish)


def simulate_both_ways(name_or_path: str, json_out: str | None) -> dict[str, Any]:
    """Run a scenario with spot node types as written and on on-demand machines; print
    the comparison (or, with `json_out` "-", both reports), and write both as JSON."""
    from burla.sim.both_ways import print_comparison, run_both_ways

    both = run_both_ways(scenario.load(name_or_path))
    if json_out == "-":
        sys.stdout.write(json.dumps(both, indent=1) + "\n")
    else:
        print_comparison(both)
    if json_out and json_out != "-":
        Path(json_out).write_text(json.dumps(both, indent=1) + "\n")
    return both
