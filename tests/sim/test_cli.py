"""`burla sim`: a summary on stdout, the report as JSON, the timeline as a PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from burla.sim import report, run, scenario

SCENARIO = """\
name: two-nodes
seed: 7
node_types:
  - {name: small, cpus: 4, ram_gb: 16, boot_s: {low: 20, high: 40}}
images:
  - {image: default, start_s: 1, pull_s: 5}
standby:
  - {node_type: small, count: 2}
jobs:
  - {n_inputs: 20, run_s: {low: 1, high: 30}}
"""


def burla(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "burla.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_burla_sim_seed_prints_a_summary_and_writes_json_and_a_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "seed.json", tmp_path / "seed.png"
    done = burla("sim", "seed", "--json", str(out), "--plot", str(png))
    assert done.returncode == 0, done.stderr
    assert "CPUs working before any new node is ready" in done.stdout
    seed = json.loads(out.read_text())
    assert (seed["cpus_now"], seed["nodes_started"], seed["new_nodes_for_job"]) == (480, 11, 1)
    assert seed["time_to_first_result_s"] < 1.0
    assert seed["wall_s"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000


def test_burla_sim_runs_a_scenario_file(tmp_path: Path) -> None:
    path, out = tmp_path / "mine.yaml", tmp_path / "mine.json"
    path.write_text(SCENARIO)
    done = burla("sim", str(path), "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["scenario"] == "two-nodes"


def test_an_unknown_scenario_is_refused_with_the_shipped_names() -> None:
    done = burla("sim", "no-such-scenario")
    assert done.returncode == 2
    assert "no-such-scenario" in done.stderr
    assert "seed" in done.stderr


def test_the_plot_shows_nodes_by_state_and_cpus_working(tmp_path: Path) -> None:
    result = run.run(scenario.parse(SCENARIO))
    png = tmp_path / "plot.png"
    report.plot(result, png)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_burla_sim_json_dash_prints_the_report_for_scripts() -> None:
    done = burla("sim", "seed", "--json", "-")
    assert done.returncode == 0, done.stderr
    seed = json.loads(done.stdout)
    assert (seed["cpus_now"], seed["nodes_started"]) == (480, 11)


def test_the_help_names_every_shipped_scenario() -> None:
    shown = burla("sim", "--help")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    missing = [name for name in scenario.shipped() if name not in text]
    assert missing == []


SPOT_SCENARIO = SCENARIO.replace(
    "{name: small, cpus: 4, ram_gb: 16,",
    "{name: n2-standard-4, cpus: 4, ram_gb: 16, spot: true, preemptions_per_hour: 30,",
).replace("node_type: small", "node_type: n2-standard-4")


def test_burla_sim_both_ways_compares_spot_with_on_demand(tmp_path: Path) -> None:
    path, out = tmp_path / "spot.yaml", tmp_path / "both.json"
    path.write_text(SPOT_SCENARIO)
    done = burla("sim", str(path), "--both-ways", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "both ways (seed 7)" in done.stdout
    assert "of the machines' cost and takes" in done.stdout
    both = json.loads(out.read_text())
    assert set(both) >= {"spot", "on_demand", "savings"}
    assert both["spot"]["cost_usd"] < both["on_demand"]["cost_usd"]
    refused = burla("sim", "seed", "--both-ways")
    assert refused.returncode != 0
    assert "has no spot node type" in refused.stderr
