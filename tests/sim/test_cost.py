"""What jobs cost in a simulation: each job's node time at list price, a job stopped when
its cost reaches its max_cost, and one refused before it runs, all under virtual time."""

from __future__ import annotations

from typing import Any

import pytest

from burla.backends.gcp.prices import Price, hourly_price
from burla.sim import run, scenario
from tests.sim.clean import CLEAN_CHECKS

BUDGETS = """
name: budgets
seed: 3
node_types:
  - name: n2-standard-8
    cpus: 8
    ram_gb: 32
    boot_s: 60
images:
  - image: burla/default:py3.11
standby:
  - {node_type: n2-standard-8, count: 2}
jobs:
  - n_inputs: 16         # two nodes for a minute: about $0.013
    run_s: 60
    max_cost: 1.0
  - n_inputs: 400        # one node for 500 s would be $0.054: stopped at $0.02
    run_s: 10
    max_parallelism: 8
    max_cost: 0.02
  - at_s: 1              # the same, with its estimate: refused before it runs
    n_inputs: 400
    run_s: 10
    max_parallelism: 8
    seconds_per_input: 10
    max_cost: 0.02
"""


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run.run(scenario.parse(BUDGETS), validate=True)


def n2_8_usd_per_hour() -> float:
    price = hourly_price("n2-standard-8", "us-central1")
    assert isinstance(price, Price)
    return price.usd_per_hour


def test_each_job_costs_its_node_time_at_list_price(report: dict[str, Any]) -> None:
    within = report["jobs"][0]
    assert within["state"] == "succeeded"
    assert within["node_seconds"] == pytest.approx(2 * 60, abs=1.0)  # 2 nodes, one wave
    assert within["cost_usd"] == pytest.approx(within["node_seconds"] * n2_8_usd_per_hour() / 3600)
    assert "n2 on-demand list price in us-central1 of 2026-07-30" in within["cost_basis"]
    assert report["prices"]["n2-standard-8"]["usd_per_hour"] == n2_8_usd_per_hour()
    # The machines' bill holds the jobs' node time, and idle standby and boots besides.
    assert report["cost_usd"] > report["jobs_cost_usd"] > 0
    assert report["jobs_node_seconds"] == sum(job["node_seconds"] for job in report["jobs"])


def test_a_job_is_stopped_when_its_cost_reaches_its_max_cost(report: dict[str, Any]) -> None:
    stopped = report["jobs"][1]
    assert stopped["state"] == "canceled"
    assert stopped["stopped_over_budget"]
    assert stopped["cost_usd"] == pytest.approx(0.02, abs=0.0002)  # within a second of node time
    # It held one node for the time $0.02 buys: waves of 8 inputs of 10 s each finished.
    held_s = 0.02 / n2_8_usd_per_hour() * 3600
    assert stopped["node_seconds"] == pytest.approx(held_s, abs=1.0)
    assert stopped["results_received"] == stopped["results_stored"] == 8 * int(held_s // 10)
    assert report["checks"] == CLEAN_CHECKS


def test_a_job_whose_estimate_is_over_its_max_cost_never_runs(report: dict[str, Any]) -> None:
    refused = report["jobs"][2]
    assert refused["state"] == "refused"
    assert "EstimateOverBudgetError" in refused["error"]
    assert "would cost at least $0.0540, over its max_cost=$0.02" in refused["error"]
    assert refused["results_received"] == refused["node_seconds"] == 0
    assert refused["time_to_first_start_s"] is None


def test_a_price_per_hour_in_the_scenario_comes_before_the_list_price() -> None:
    text = BUDGETS.replace("ram_gb: 32\n", "ram_gb: 32\n    price_per_hour: 36.0\n")
    priced = run.run(scenario.parse(text))
    within = priced["jobs"][0]
    assert within["cost_usd"] == pytest.approx(within["node_seconds"] / 100)
    assert within["cost_basis"] == "price_per_hour of node type n2-standard-8"
    assert priced["jobs"][2]["state"] == "refused"  # 500 node-seconds at $36 an hour
