"""The ten-thousand scenario at a tenth of its size: 1,000 nodes, a standby of 300, four
users whose jobs need every node, and machines dying under them. The services' state
machines check their invariants after every step."""

from __future__ import annotations

from typing import Any

import pytest

from burla.sim import run, scenario
from burla.sim.scenario import Scenario
from tests.sim.clean import CLEAN_CHECKS

pytestmark = pytest.mark.slow


def _scaled(full: Scenario, factor: float) -> Scenario:
    """The same scenario with its node counts, inputs and node deaths times `factor`."""
    assert full.max_nodes is not None
    return full.model_copy(
        update={
            "standby": tuple(
                group.model_copy(update={"count": round(group.count * factor)})
                for group in full.standby
            ),
            "max_nodes": round(full.max_nodes * factor),
            "jobs": tuple(
                job.model_copy(update={"n_inputs": round(job.n_inputs * factor)})
                for job in full.jobs
            ),
            "faults": tuple(
                fault.model_copy(update={"count": max(1, round(fault.count * factor))})
                for fault in full.faults
            ),
        }
    )


@pytest.fixture(scope="module")
def tenth() -> tuple[Scenario, dict[str, Any]]:
    small = _scaled(scenario.load("ten-thousand"), 0.1)
    return small, run.run(small, validate=True)


def test_every_node_the_jobs_need_boots_and_nothing_is_lost(
    tenth: tuple[Scenario, dict[str, Any]],
) -> None:
    small, report = tenth
    assert report["checks"] == CLEAN_CHECKS
    assert len(report["jobs"]) == 4
    for job in report["jobs"]:
        assert job["state"] == "succeeded", job
        assert job["results_received"] == job["results_stored"] == job["n_inputs"] == 500
    assert report["peak_nodes"] == small.max_nodes == 1000
    # The standby set covers 300 of the 1,000 nodes; 700 more boot for the jobs, and
    # at most one more for each machine that died.
    deaths = sum(len(fault["targets"]) for fault in report["faults"])
    assert deaths == 20
    assert 700 <= report["nodes_started"] <= 700 + deaths
    assert report["inputs_rerun"] > 0  # the dead machines' inputs ran again elsewhere


def test_the_standby_set_is_whole_and_idle_at_the_end(
    tenth: tuple[Scenario, dict[str, Any]],
) -> None:
    _, report = tenth
    timeline = report["timeline"]
    assert max(timeline["busy"]) > 900  # the jobs held nearly every node at once
    end = {state: timeline[state][-1] for state in ("booting", "ready", "busy", "machines")}
    assert end == {"booting": 0, "ready": 300, "busy": 0, "machines": 300}
