"""A small job's inputs ride with its nodes' assignments (services.handed_inputs): its
queue holds none of them, and none is lost when a node or main_service goes."""

from __future__ import annotations

from typing import Any

from burla.sim import run
from burla.sim.scenario import Scenario
from tests.sim.clean import CLEAN_CHECKS


def small_job(**changes: Any) -> Scenario:
    """32 inputs of 2 s on a standby of five 8-CPU nodes, on Firestore (whose profile
    counts the Store's calls): four nodes take the job, one is spare."""
    return Scenario.model_validate(
        {
            "name": "handed-out",
            "seed": 3,
            "node_types": [{"name": "eight", "cpus": 8, "ram_gb": 32, "boot_s": 30}],
            "images": [{"image": "burla/default:py3.11", "start_s": 1, "pull_s": 10}],
            "standby": [{"node_type": "eight", "count": 5}],
            "jobs": [{"at_s": 0, "n_inputs": 32, "run_s": 2.0}],
            "store_profile": "firestore",
            **changes,
        }
    )


def queue_writes(report: dict[str, Any]) -> int:
    """Calls that write a job's queue: pushes, acks and renewals (claims of an empty
    queue write nothing)."""
    calls = report["store_calls"]
    return sum(calls.get(f"store.{name}", {}).get("calls", 0) for name in ("push", "ack", "renew"))


def test_a_small_jobs_inputs_go_with_the_assignments_and_no_queue_item_is_written() -> None:
    report = run.run(small_job(), validate=True)
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 32
    assert job["standby_nodes_for_job"] == 4
    assert queue_writes(report) == 0
    assert report["checks"] == CLEAN_CHECKS


def test_inputs_handed_to_a_node_that_dies_run_again_elsewhere() -> None:
    faults = [{"at_s": 1.0, "kind": "node_death"}]
    report = run.run(small_job(faults=faults), validate=True)
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 32
    assert report["inputs_rerun"] == 8  # the dead node's, queued on their own
    assert report["store_calls"]["store.push"]["calls"] >= 1
    assert report["checks"] == CLEAN_CHECKS


def test_a_new_main_service_queues_the_inputs_that_were_handed_out_and_finishes() -> None:
    """main_service dies mid-job; the new one deletes the machines it finds (as on a
    cloud cluster), so every input handed out is in no queue and on no node: it queues
    those whose results are missing, and new nodes run them."""
    faults = [{"at_s": 1.0, "kind": "main_restart", "down_s": 1.0}]
    report = run.run(small_job(faults=faults, settle_s=600.0), validate=True)
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 32
    assert job["streams_read"] == 2
    assert report["checks"]["inputs_lost"] == report["checks"]["inputs_recorded_twice"] == 0
