"""Memory that grows, in the simulator: inputs that use more than func_ram run out of
memory, run again with twice as much on fewer, bigger workers (the real main_service and
node_service under virtual time), and one that needs more than a whole node fails at
once saying so; a node's busy workers are never held to more memory than it has."""

from __future__ import annotations

from typing import Any

import pytest

from burla.sim import run, scenario
from tests.sim.clean import CLEAN_CHECKS

MEMORY = """
name: memory
seed: 5
node_types:
  - name: n2-highcpu-4   # 4 CPUs, 4 GB: four workers of 1 GB fill it
    cpus: 4
    ram_gb: 4
    boot_s: 60
images:
  - image: burla/default:py3.11
standby:
  - {node_type: n2-highcpu-4, count: 2}
jobs:
  - n_inputs: 40
    func_ram: 1
    retries: 2
    run_s: {low: 5, high: 30}   # siblings still busy when an input comes back
    memory_gb: {3: 1.5, 17: 3.5}   # 2 GB, then the whole node (3 workers parked)
  - at_s: 200
    n_inputs: 8
    func_ram: 1
    retries: 5
    run_s: 10
    memory_gb: {5: 6}              # more than a node has
  - at_s: 400
    n_inputs: 8
    func_ram: 1
    retries: 1
    run_s: 10
    grow_memory: false
    memory_gb: {2: 1.5}
"""


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run.run(scenario.parse(MEMORY), validate=True)


def test_nothing_is_lost_and_no_node_holds_more_memory_than_it_has(report: dict[str, Any]):
    assert report["checks"] == CLEAN_CHECKS
    for job in report["jobs"]:
        assert job["results_received"] == job["results_stored"] == job["n_inputs"]


def test_inputs_that_ran_out_succeed_with_twice_the_memory_up_to_the_whole_node(
    report: dict[str, Any],
):
    grew = report["jobs"][0]
    assert grew["state"] == "succeeded"
    assert grew["memory"] == {
        "grew": [
            {"input": 3, "ran_out_with": [1.0], "succeeded_with": 2.0},
            {"input": 17, "ran_out_with": [1.0, 2.0], "succeeded_with": 4.0},
        ],
        "count": 2,
    }


def test_an_input_that_needs_more_than_a_node_fails_at_once_saying_so(report: dict[str, Any]):
    too_big = report["jobs"][1]
    assert too_big["state"] == "failed"
    failure = too_big["failure"]
    assert (failure["input"], failure["type"]) == (5, "OutOfMemoryError")
    # Three tries of the six it had: 1, 2 and 4 GB, the last the node's whole memory.
    assert failure["message"].startswith("input 5 failed after 3 tries")
    assert (
        "with 1 GB, 2 GB and 4 GB, the last time with its node's whole memory"
        in (failure["message"])
    )
    assert "needs more memory than a node has" in failure["message"]


def test_without_grow_memory_each_try_has_func_ram(report: dict[str, Any]):
    same = report["jobs"][2]
    assert same["state"] == "failed"
    assert same["failure"]["input"] == 2
    assert "went over func_ram=1 GB" in same["failure"]["message"]
    assert same["memory"] is None
