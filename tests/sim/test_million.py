"""The million scenario at a tenth of its size: 100 warm nodes of 96 CPUs, 100,000 inputs
of a second each, on Firestore. The makespan stays within 15% of the ideal (the inputs
spread over every CPU, after the first one's latency), and nothing is lost or recorded
twice."""

from __future__ import annotations

import pytest

from burla.sim import run, scenario
from burla.sim.scenario import Scenario

pytestmark = pytest.mark.slow


def _tenth(full: Scenario) -> Scenario:
    assert full.max_nodes is not None
    return full.model_copy(
        update={
            "standby": tuple(g.model_copy(update={"count": g.count // 10}) for g in full.standby),
            "max_nodes": full.max_nodes // 10,
            "jobs": tuple(j.model_copy(update={"n_inputs": j.n_inputs // 10}) for j in full.jobs),
        }
    )


def test_a_tenth_of_the_million_finishes_within_15_percent_of_ideal() -> None:
    million = scenario.load("million")
    assert million.store_profile == "firestore"
    tenth = _tenth(million)
    report = run.run(tenth)
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 100_000
    cpus = report["cpus_now"]
    assert cpus == 9_600
    ideal = 100_000 * 1.0 / cpus + report["time_to_first_start_s"]
    assert report["makespan_s"] <= 1.15 * ideal
    checks = report["checks"]
    assert checks["inputs_lost"] == checks["inputs_recorded_twice"] == 0
    assert checks["results_missing_from_store"] == 0
    assert report["inputs_rerun"] == 0
