"""Random scenarios keep the invariants, and a scenario with its seed gives one timeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import Phase, given, settings

from burla.core.errors import BurlaError
from burla.sim import run, scenario
from burla.sim.scenario import Scenario
from tests.sim.strategies import scenarios

pytestmark = pytest.mark.slow

WALL_LIMIT_S = 60.0
"""Far past any random scenario's run (tenths of a second): one that runs longer has
hung, and is printed so that it can be run again."""
VARYING = ("wall_s", "events_per_s")
"""What may differ between two runs of one scenario: how fast this machine was."""


def check_invariants(report: dict[str, Any]) -> None:
    checks = report["checks"]
    assert checks["inputs_lost"] == 0, report["jobs"]
    assert checks["inputs_recorded_twice"] == 0, report["jobs"]
    assert checks["results_missing_from_store"] == 0, report["jobs"]
    assert checks["nodes_on_two_jobs"] == []
    assert checks["standby_restored"], report["timeline"]
    assert checks["resumed_inputs_run_again"] == 0, report["jobs"]
    assert checks["resumed_inputs_not_run"] == 0, report["jobs"]
    assert checks["resumed_results_not_whole"] == 0, report["jobs"]
    for job in report["jobs"]:
        # A job canceled by its user after its call stopped, before resuming it; or a
        # resume with failed_only whose inputs are all skipped (never run before).
        stopped = ("canceled",) if job["stopped_following"] or job["resumes"] else ()
        assert job["state"] in ("succeeded", "failed", "refused", *stopped), job
        if job["state"] == "succeeded" and not job["stopped_following"]:
            assert job["results_received"] == job["n_inputs"], job


# A failing scenario is shrunk, but not explained: explaining traces every line of the
# simulated cluster, which runs each scenario many times slower than the wall limit allows.
@settings(phases=[phase for phase in Phase if phase is not Phase.explain])
@given(scenarios())
def test_random_scenarios_lose_nothing_record_nothing_twice_and_restore_standby(
    chosen: Scenario,
) -> None:
    # validate=True: the services' own state machines check no node is on two jobs and
    # no input is lost or recorded twice after every step, too.
    try:
        report = run.run(chosen, validate=True, wall_limit_s=WALL_LIMIT_S)
    except BurlaError:
        print(f"this scenario did not finish: {chosen.model_dump_json()}", file=sys.stderr)
        raise
    check_invariants(report)


def _timeline(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key not in VARYING}


def test_the_same_seed_gives_the_same_timeline() -> None:
    node_loss = scenario.load("node-loss")
    first, second = run.run(node_loss), run.run(node_loss)
    assert _timeline(first) == _timeline(second)
    other = run.run(node_loss.model_copy(update={"seed": node_loss.seed + 1}))
    assert _timeline(other)["timeline"] != _timeline(first)["timeline"]


def test_the_same_seed_gives_the_same_timeline_in_another_process() -> None:
    """String hashing (and so set order) differs between processes; the timeline does not."""
    here = run.run(
        scenario.load("burst").model_copy(update={"jobs": scenario.load("burst").jobs[:1]})
    )
    code = (
        "import json, sys\n"
        "from burla.sim import run, scenario\n"
        "s = scenario.load('burst')\n"
        "s = s.model_copy(update={'jobs': s.jobs[:1]})\n"
        "json.dump(run.run(s), sys.stdout)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    assert _timeline(json.loads(there.stdout)) == _timeline(json.loads(json.dumps(here)))
