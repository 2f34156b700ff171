"""`burla sim SCENARIO`: run a scenario, print its summary, write its JSON and plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from burla.sim import report, run, scenario


def simulate(name_or_path: str, json_out: str | None, plot_out: str | None) -> dict[str, Any]:
    chosen = scenario.load(name_or_path)
    result = run.run(chosen)
    report.print_summary(result)
    if json_out:
        report.write_json(result, Path(json_out))
    if plot_out:
        report.plot(result, Path(plot_out))
    return result
