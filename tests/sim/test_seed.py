"""The seed's example under the simulator: the real services, the numbers the seed gives."""

from __future__ import annotations

from typing import Any

import pytest

from burla.sim import run, scenario
from tests.sim.clean import CLEAN_CHECKS


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    return run.run(scenario.load("seed"))


@pytest.fixture(scope="module")
def cold() -> dict[str, Any]:
    return run.run(scenario.load("cold"))


def test_480_cpus_work_before_any_new_node_is_ready(seed: dict[str, Any]) -> None:
    assert seed["cpus_now"] == 480
    assert seed["standby_nodes_for_job"] == 5


def test_11_nodes_start_and_only_those_ready_while_inputs_wait_join_the_job(
    seed: dict[str, Any],
) -> None:
    assert seed["nodes_started"] == 11
    assert seed["new_nodes_for_job"] == 1  # the others are ready after the queue is empty
    assert seed["peak_nodes"] == 16
    # 16 nodes for the 6.4 minutes of the job would cost 1.7 node-hours; those that do
    # not join it go as they come (standby is whole without them).
    assert seed["node_seconds"] < 1.5 * 3600


def test_standby_is_whole_again_after_the_job(seed: dict[str, Any]) -> None:
    assert seed["standby_restored"] is True
    final = {key: values[-1] for key, values in seed["timeline"].items()}
    assert (final["ready"], final["busy"], final["booting"]) == (5, 0, 0)


def test_with_standby_the_first_result_comes_within_a_virtual_second(
    seed: dict[str, Any],
) -> None:
    assert seed["time_to_first_result_s"] < 1.0
    assert seed["time_to_first_start_s"] < 0.1


def test_every_input_is_recorded_once(seed: dict[str, Any]) -> None:
    (job,) = seed["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 1000
    assert seed["checks"] == CLEAN_CHECKS


def test_cold_the_first_result_takes_minutes_and_11_nodes_start(
    cold: dict[str, Any],
) -> None:
    assert cold["time_to_first_result_s"] > 120.0
    assert cold["cpus_now"] == 0
    assert cold["nodes_started"] == 11
    # The last two are ready once no input waits: the nodes that came first took them all.
    assert cold["new_nodes_for_job"] == 9
    assert cold["jobs"][0]["state"] == "succeeded"
    assert cold["checks"]["inputs_lost"] == 0


def test_the_report_has_the_keys_scripts_read(seed: dict[str, Any]) -> None:
    for key in (
        "cpus_now",
        "nodes_started",
        "new_nodes_for_job",
        "time_to_first_result_s",
        "makespan_s",
        "wall_s",
    ):
        assert isinstance(seed[key], int | float), key
