"""Spot machines in the simulator: preempted at their type's rate, drawn from the
scenario's seed; the shipped `spot` scenario run both ways costs less on spot VMs, and
its preemptions lose no input and record none twice."""

from __future__ import annotations

from typing import Any

import pytest

from burla.core.errors import InvalidRequestError
from burla.sim import both_ways, run, scenario
from tests.sim.clean import CLEAN_CHECKS


@pytest.fixture(scope="module")
def both() -> dict[str, Any]:
    return both_ways.run_both_ways(scenario.load("spot"))


def test_spot_vms_cost_less_and_their_preemptions_lose_nothing(both: dict[str, Any]) -> None:
    spot, on_demand = both["spot"], both["on_demand"]
    for report in (spot, on_demand):
        assert report["checks"] == CLEAN_CHECKS
        [job] = report["jobs"]
        assert job["state"] == "succeeded"
        assert job["results_received"] == job["results_stored"] == job["n_inputs"] == 4000
    assert spot["preemptions"] > 0
    assert spot["node_losses"]["preempted"] == spot["preemptions"]
    assert spot["node_losses"]["machine failed"] == 0
    assert spot["inputs_rerun"] > 0
    assert on_demand["preemptions"] == on_demand["inputs_rerun"] == 0
    assert spot["cost_usd"] < on_demand["cost_usd"]
    assert spot["jobs_cost_usd"] < on_demand["jobs_cost_usd"]
    assert "spot list price" in spot["prices"]["n2-standard-32"]["source"]
    assert "on-demand list price" in on_demand["prices"]["n2-standard-32"]["source"]
    saved = both["savings"]
    assert saved["cost_usd_saved"] == pytest.approx(on_demand["cost_usd"] - spot["cost_usd"])
    assert saved["makespan_s_added"] == pytest.approx(spot["makespan_s"] - on_demand["makespan_s"])


def test_preemptions_are_the_same_in_every_run_of_a_seed(both: dict[str, Any]) -> None:
    again = run.run(scenario.load("spot"))
    first = both["spot"]
    assert [f for f in again["faults"] if f["kind"] == "preemption"] == [
        f for f in first["faults"] if f["kind"] == "preemption"
    ]
    assert (again["makespan_s"], again["cost_usd"], again["inputs_rerun"]) == (
        first["makespan_s"],
        first["cost_usd"],
        first["inputs_rerun"],
    )


def test_another_seed_preempts_other_machines_at_other_moments(both: dict[str, Any]) -> None:
    other = run.run(scenario.load("spot").model_copy(update={"seed": 8}))
    moments = [f["at_s"] for f in other["faults"] if f["kind"] == "preemption"]
    assert moments
    assert moments != [f["at_s"] for f in both["spot"]["faults"] if f["kind"] == "preemption"]
    assert other["checks"] == CLEAN_CHECKS


def test_the_comparison_shows_cost_against_makespan_both_ways(both: dict[str, Any]) -> None:
    rows = {label: (spot, plain) for label, spot, plain in both_ways.comparison_rows(both)}
    assert rows["spot VMs preempted"] == (f"{both['spot']['preemptions']}", "0")
    assert rows["inputs lost / recorded twice"] == ("0 / 0", "0 / 0")
    assert rows["makespan"][0].endswith(" min")
    assert rows["machines' cost (node-hours)"][0].startswith("$")


def test_a_scenario_without_spot_machines_cannot_be_run_both_ways() -> None:
    with pytest.raises(InvalidRequestError, match="has no spot node type"):
        both_ways.run_both_ways(scenario.load("seed"))
