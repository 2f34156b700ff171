"""The million scenario at a tenth of its size: 100 warm nodes of 96 CPUs, 100,000 inputs
of a second each, on Firestore whose key ranges are already split (firestore-warm): every
document written or deleted is one of the database's 10,000 writes a second, and the
makespan stays within 15% of the time those writes take. Nothing is lost or recorded
twice. (On a cold queue, as each new job's is, it takes about 1,050 s: see
docs/simulator.md.)"""

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


def test_a_tenth_of_the_million_finishes_within_15_percent_of_the_databases_write_time() -> None:
    million = scenario.load("million")
    assert million.store_profile == "firestore"
    tenth = _tenth(million).model_copy(update={"store_profile": "firestore-warm"})
    report = run.run(tenth)
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 100_000
    assert report["cpus_now"] == 9_600
    # A push, a lease and a delete per input, the results, and the leases' renewals: far
    # more than the 9,600 CPUs need, so the database sets the pace, not the CPUs.
    writes_s = report["store_writes"] / 10_000
    assert writes_s > 100_000 * 1.0 / 9_600
    assert writes_s - 1.0 <= report["makespan_s"] <= 1.15 * writes_s
    assert report["checks"] == CLEAN_CHECKS
    assert report["inputs_rerun"] == 0
