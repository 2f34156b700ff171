"""The million scenario at a tenth of its size: 100 warm nodes of 96 CPUs, 100,000 inputs
of a second each, on Firestore as a new job finds it (its queue and results are new key
ranges, taken at 500 writes a second at first). Its nodes start on inputs handed out with
their assignments, and its queue holds the rest in runs that shrink toward the end
(services.input_runs), so the database is far from its limits and the makespan stays
within 10% of the ideal (the full million's goal is 15%): the inputs' CPU time over the
CPUs, after the first input starts. Nothing is lost or recorded twice."""

from __future__ import annotations

import pytest

from burla.sim import run, scenario
from burla.sim.scenario import Scenario
from tests.sim.clean import CLEAN_CHECKS

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


def test_a_tenth_of_the_million_finishes_within_10_percent_of_the_ideal() -> None:
    million = scenario.load("million")
    assert million.store_profile == "firestore"
    report = run.run(_tenth(million))
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 100_000
    assert report["cpus_now"] == 9_600
    ideal = job["time_to_first_start_s"] + 100_000 * 1.0 / 9_600
    assert ideal <= report["makespan_s"] <= 1.10 * ideal
    assert job["time_to_first_start_s"] < 0.1  # its first inputs came with the assignments
    # An item per run, not per input: its claim, renewals and ack are one write each.
    assert report["store_writes"] < 0.1 * 100_000
    assert report["checks"] == CLEAN_CHECKS
    assert report["inputs_rerun"] == 0
