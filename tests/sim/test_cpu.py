"""The services' own CPU, measured and charged in virtual time: a slow main_service is a
queue and a later makespan."""

from __future__ import annotations

from typing import Any

from burla.sim import run, scenario

SMALL_FAST_JOB = scenario.parse(
    """
name: small-fast-job
seed: 3
node_types: [{name: n2-standard-8, cpus: 8, ram_gb: 32, boot_s: 60}]
images: [{image: burla/default:py3.11}]
standby: [{node_type: n2-standard-8, count: 2}]
jobs: [{n_inputs: 200, run_s: {low: 0.001, high: 0.01}}]
"""
)


def _charged(scale: float) -> dict[str, Any]:
    charge = scenario.ServiceCpuCharge(measure=True, scale=scale)
    return run.run(SMALL_FAST_JOB.model_copy(update={"service_cpu": charge}))


def test_cpu_scaled_to_nothing_changes_nothing() -> None:
    uncharged = run.run(SMALL_FAST_JOB)
    free = _charged(0.0)
    for key in ("makespan_s", "time_to_first_result_s", "node_seconds", "timeline"):
        assert free[key] == uncharged[key], key
    assert uncharged["service_cpu"] is None
    assert free["service_cpu"]["main_service"]["busy_s"] == 0


def test_a_slow_main_service_queues_work_and_finishes_later() -> None:
    uncharged = run.run(SMALL_FAST_JOB)
    slow = _charged(1000.0)
    main = slow["service_cpu"]["main_service"]
    assert main["busy_s"] > 0
    assert main["longest_queue_s"] > 0
    assert slow["service_cpu"]["nodes"]["busy_s"] > 0
    assert slow["makespan_s"] > uncharged["makespan_s"]
    assert slow["time_to_first_result_s"] > uncharged["time_to_first_result_s"]
    assert slow["checks"]["inputs_lost"] == 0
    (job,) = slow["jobs"]
    assert job["state"] == "succeeded"
