"""burla at cloud scale, in virtual seconds, from the simulator (the real main_service
and node_services under virtual time): `python -m benchmarks.sim_numbers [OUT.json]`.

A job of 1,000 single-CPU inputs, warm (a standby of 11 nodes of 96 CPUs covers it)
and cold (no standby: GCE-like boots of 60-120 s, then the image download).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KEYS = (
    "time_to_first_start_s",
    "time_to_all_started_s",
    "time_to_first_result_s",
    "makespan_s",
    "nodes_started",
    "wall_s",
)


def measure() -> dict[str, Any]:
    from burla.sim import run, scenario

    cold = scenario.load("cold")
    seed = scenario.load("seed")
    warm = seed.model_copy(
        update={"name": "warm", "standby": (seed.standby[0].model_copy(update={"count": 11}),)}
    )
    results: dict[str, Any] = {}
    for label, chosen in (("warm_1000_cpu_job", warm), ("cold_1000_cpu_job", cold)):
        report = run.run(chosen)
        (job,) = report["jobs"]
        results[label] = {key: job.get(key, report.get(key)) for key in KEYS}
        results[label]["wall_s"] = report["wall_s"]
    return results


def measure_if_installed() -> dict[str, Any]:
    """The numbers, or why there are none (the simulator needs the sim extra)."""
    try:
        return measure()
    except ImportError as error:
        return {"error": f"not measured: {error} (pip install 'burla[sim]')"}


def markdown(numbers: dict[str, Any] | None) -> str:
    """A section for results.md; empty when the simulator did not run."""
    if not numbers:
        return ""
    if "error" in numbers:
        return f"## Cloud scale, simulated\n\n{numbers['error']}\n"
    lines = [
        "## Cloud scale, simulated (virtual seconds)",
        "",
        "| job of 1,000 inputs | first input starts | all started | first result "
        "| makespan | nodes started |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, row in numbers.items():
        lines.append(
            f"| {label} | {row['time_to_first_start_s']:.2f} | {row['time_to_all_started_s']:.2f} "
            f"| {row['time_to_first_result_s']:.2f} | {row['makespan_s']:.0f} "
            f"| {row['nodes_started']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/sim.json")
    numbers = measure()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
