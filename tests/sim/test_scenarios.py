"""Every shipped scenario runs, keeps the invariants, and shows what it is about."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from burla.sim import run, scenario
from tests.sim.clean import CLEAN_CHECKS

BIG = ("scale", "ten-thousand", "million", "resume")  # own tests (some at a tenth)
SMALL = [name for name in scenario.shipped() if name not in BIG]


@pytest.fixture(scope="module")
def reports() -> dict[str, dict[str, Any]]:
    return {name: run.run(scenario.load(name)) for name in SMALL}


def test_burla_ships_the_scenarios_the_simulator_promises() -> None:
    assert set(scenario.shipped()) >= {
        "seed",
        "cold",
        "burst",
        "custom-image",
        "node-loss",
        "flaky-store",
        "main-restart",
        "scale",
        "ten-thousand",
    }


@pytest.mark.parametrize("name", SMALL)
def test_a_shipped_scenario_loses_nothing_and_ends_in_standby(
    reports: dict[str, dict[str, Any]], name: str
) -> None:
    report = reports[name]
    assert report["checks"] == CLEAN_CHECKS
    for job in report["jobs"]:
        assert job["state"] == "succeeded", job
        assert job["results_received"] == job["results_stored"] == job["n_inputs"]
    timeline = report["timeline"]
    assert len(timeline["t"]) > 10
    assert 0 < max(timeline["busy_cpus"]) <= report["peak_busy_cpus"]


def test_burst_every_user_gets_results_within_the_node_cap(
    reports: dict[str, dict[str, Any]],
) -> None:
    burst = reports["burst"]
    assert len(burst["jobs"]) == 30
    assert len({job["user"] for job in burst["jobs"]}) == 30
    timeline = burst["timeline"]
    states = zip(timeline["booting"], timeline["ready"], timeline["busy"], strict=True)
    nodes = [sum(counts) for counts in states]
    assert max(nodes) == 60  # the cap; machines being deleted meanwhile are not counted
    # Nodes are single-tenant: the first jobs start on standby nodes, later ones wait.
    firsts = sorted(job["time_to_first_result_s"] for job in burst["jobs"])
    assert firsts[0] < 60 < firsts[-1]


def test_a_new_image_is_built_once_then_the_same_image_starts_warm(
    reports: dict[str, dict[str, Any]],
) -> None:
    first, again = reports["custom-image"]["jobs"]
    assert first["time_to_first_start_s"] > 180  # the build, then a cold boot
    assert again["time_to_first_start_s"] < 1.0
    assert again["standby_nodes_for_job"] == 5


def test_lost_nodes_and_containers_rerun_inputs_without_losing_any(
    reports: dict[str, dict[str, Any]],
) -> None:
    report = reports["node-loss"]
    assert [f["kind"] for f in report["faults"]] == [
        "node_death",
        "container_death",
        "node_death",
    ]
    assert len(report["faults"][1]["targets"]) == 20
    assert report["inputs_rerun"] > 0
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == 2000


def test_a_flaky_store_is_retried_through_and_the_job_finishes_whole(
    reports: dict[str, dict[str, Any]],
) -> None:
    report = reports["flaky-store"]
    assert report["store_failures_injected"] > 50
    assert report["answers_lost"] > 5
    assert report["jobs"][0]["state"] == "succeeded"
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0
    flaky = ("flaky-store", "main-restart")
    assert all(r["store_failures_injected"] == 0 for n, r in reports.items() if n not in flaky)


def test_a_new_main_service_takes_the_job_over_and_the_client_reads_its_stream(
    reports: dict[str, dict[str, Any]],
) -> None:
    report = reports["main-restart"]
    assert [fault["kind"] for fault in report["faults"]] == ["main_restart"]
    assert report["blob_failures_injected"] > 0
    assert report["store_failures_injected"] > 0
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["streams_read"] == 2  # the first main_service's, then the new one's
    assert job["results_received"] == job["results_stored"] == 1000
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0
    assert report["standby_restored"]


def test_a_node_whose_containers_go_while_it_takes_a_job_does_not_crash() -> None:
    """Found by the random scenarios: main_service restarts just as a job of 2-CPU inputs
    arrives, so a node pinning its workers to new CPUs loses them midway (its machine is
    deleted). Pinning and memory limits of a container gone meanwhile are left to the
    worker's reader, which replaces it."""
    chosen = scenario.Scenario.model_validate(
        {
            "name": "restart-at-arrival",
            "seed": 100,
            "node_types": [{"name": "small", "cpus": 2, "ram_gb": 8, "boot_s": 2}],
            "images": [{"image": "default", "start_s": {"low": 1, "high": 4}, "pull_s": 3}],
            "standby": [{"node_type": "small", "count": 2}],
            "refill_standby": False,
            "jobs": [{"at_s": 7, "n_inputs": 8, "func_cpu": 2, "run_s": 0}, {"n_inputs": 0}],
            "faults": [{"at_s": 7, "kind": "main_restart", "down_s": 0}],
            "client_pause_s": 5.0,
            "settle_s": 600.0,
        }
    )
    report = run.run(chosen, validate=True)
    assert [job["state"] for job in report["jobs"]] == ["succeeded", "succeeded"]
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0


def test_a_takeover_with_uploaded_inputs_gives_the_same_timeline_again(
    reports: dict[str, dict[str, Any]],
) -> None:
    """Every wait is virtual: none goes to a thread (FastAPI runs a plain function's
    dependency in one, which the mock clock jumped over by whatever it took for real)."""
    again = run.run(scenario.load("main-restart"))
    varying = ("wall_s", "events_per_s")
    first = {k: v for k, v in reports["main-restart"].items() if k not in varying}
    assert {k: v for k, v in again.items() if k not in varying} == first


def test_a_slow_link_between_main_service_and_nodes_slows_the_job_and_loses_nothing(
    reports: dict[str, dict[str, Any]],
) -> None:
    """Each frame between main_service and a node takes 5 virtual seconds: the first
    result needs the assignment to go and the result to come back."""
    seed = scenario.load("seed")
    report = run.run(seed.model_copy(update={"link_delay_s": scenario.Seconds(low=5, high=5)}))
    assert reports["seed"]["time_to_first_result_s"] < 1
    assert report["time_to_first_result_s"] >= 10
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 1000
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0
    assert report["standby_restored"]


def _regression(name: str) -> dict[str, Any]:
    """The report of the scenario kept in regressions/ as `name`, its invariants checked
    after every step."""
    path = Path(__file__).parent / "regressions" / f"{name}.json"
    return run.run(scenario.load(str(path)), validate=True)


def test_an_input_acked_by_a_node_that_died_before_reporting_it_is_taken_in() -> None:
    report = _regression("acked-input-of-a-lost-node")
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0
    assert [job["state"] for job in report["jobs"]].count("succeeded") == 4


def test_inputs_claimed_after_their_job_ended_go_back_rather_than_to_the_workers() -> None:
    report = _regression("claim-that-returns-after-its-job-ended")
    assert [job["state"] for job in report["jobs"]] == [
        "succeeded",
        "succeeded",
        "failed",
        "succeeded",
    ]
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0


def test_an_input_of_a_run_that_raised_while_main_service_was_down_is_not_lost() -> None:
    """The node used to ack the run once all of it ended, so an input whose raise only the
    dead main_service heard of was in no queue and had no result: the job never ended."""
    report = _regression("raised-input-of-a-run-while-main-service-was-down")
    (job,) = report["jobs"]
    assert job["state"] == "failed"
    assert job["stopped_following"] == "input 2 failed: canceled the job"
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0
    assert report["checks"]["standby_restored"]


def test_a_big_job_taken_over_queues_its_unfinished_handed_out_inputs_and_ends_whole() -> None:
    """Inputs handed out with the assignments are in no queue: without the record naming
    them, the job taken over waited for them for ever."""
    report = _regression("handed-out-inputs-of-a-big-job-taken-over")
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 400
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0
    assert report["inputs_rerun"] > 0  # those the deleted nodes were running


def test_a_resume_reuses_a_result_its_node_wrote_as_the_job_was_canceled() -> None:
    report = _regression("result-written-as-its-job-was-canceled")
    assert [job["state"] for job in report["jobs"]] == [
        "canceled",
        "succeeded",
        "canceled",
        "succeeded",
    ]
    assert report["checks"]["resumed_inputs_run_again"] == 0
    assert report["checks"]["resumed_inputs_not_run"] == 0
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0


def test_main_service_acks_a_run_whose_input_raised_once_it_queued_that_input_again() -> None:
    """The node leaves such a run's ack to main_service: were it left unacked, its lease
    would run out and the whole run would run again."""
    chosen = scenario.Scenario.model_validate(
        {
            "name": "raised-in-runs",
            "seed": 1,
            "node_types": [{"name": "small", "cpus": 4, "ram_gb": 16, "boot_s": 30}],
            "images": [{"image": "default", "start_s": 1, "pull_s": 5}],
            "standby": [{"node_type": "small", "count": 1}],
            "max_nodes": 1,
            "jobs": [
                {
                    "at_s": 0,
                    "n_inputs": 300,  # runs of several inputs, for longer than a lease
                    "run_s": {"low": 5, "high": 10},
                    "retries": 1,
                    "raises": {"indices": [2, 7]},
                    "return_exceptions": True,
                }
            ],
        }
    )
    report = run.run(chosen, validate=True)
    (job,) = report["jobs"]
    assert job["results_received"] == 300
    assert job["inputs_failed"] == 2
    assert report["inputs_rerun"] == 2  # inputs 2 and 7, once each; nothing else
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0


def test_a_node_with_nothing_left_to_do_leaves_its_job_before_the_others_finish() -> None:
    """Three standby nodes take a job of long and short inputs (and three more refill
    standby): a node whose inputs are done once the queue is empty goes, rather than
    being paid for until the job's last input ends; the job's last node stays."""
    chosen = scenario.Scenario.model_validate(
        {
            "name": "drain",
            "seed": 3,
            "node_types": [{"name": "small", "cpus": 4, "ram_gb": 16, "boot_s": 30}],
            "images": [{"image": "default", "start_s": 1, "pull_s": 5}],
            "standby": [{"node_type": "small", "count": 3}],
            "jobs": [{"at_s": 0, "n_inputs": 12, "run_s": {"low": 10, "high": 600}}],
        }
    )
    report = run.run(chosen, validate=True)
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == 12
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0
    # Paid for all along, six nodes would cost six makespans.
    assert report["peak_nodes"] == 6
    assert report["node_seconds"] < 6 * report["makespan_s"] - 120
