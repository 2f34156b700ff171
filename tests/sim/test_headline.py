"""The headline scenario: a print-only job on 1,000 warm CPUs, as a cloud charges it."""

from __future__ import annotations

import subprocess
import sys

from burla.sim import run, scenario


def test_headline_charges_firestore_the_network_and_the_services_cpu() -> None:
    headline = scenario.load("headline")
    assert headline.store_profile == "firestore"
    assert headline.network == "same-region"
    assert headline.service_cpu.measure
    report = run.run(headline)
    (job,) = report["jobs"]
    assert job["state"] == "succeeded"
    assert job["results_received"] == job["results_stored"] == 1000
    assert report["standby_nodes_for_job"] == 125
    assert report["time_to_all_results_s"] >= report["time_to_first_result_s"] > 0
    # Every input rides with its node's assignment: nothing is pushed, acked or renewed.
    assert not {"store.push", "store.ack", "store.renew"} & set(report["store_calls"])
    assert report["service_cpu"]["main_service"]["busy_s"] > 0
    assert report["checks"]["inputs_lost"] == 0


def test_a_new_jobs_cold_key_ranges_cost_it_nothing_as_its_inputs_need_no_queue() -> None:
    """Its inputs ride with the assignments (services.handed_inputs), written in two
    pages with its record; its results go to a new, cold range of keys at 500 writes a
    second, which the nodes' pages of results (one per report) stay far below."""
    headline = scenario.load("headline")
    cold = run.run(headline)
    warm = run.run(headline.model_copy(update={"store_profile": "firestore-warm"}))
    for report in (cold, warm):
        assert report["checks"]["inputs_lost"] == 0
        assert report["store_writes"] < 1000  # an item, a lease and a delete each, before
    assert cold["time_to_all_results_s"] < warm["time_to_all_results_s"] + 0.5


def test_burla_sim_headline_prints_the_time_to_all_results() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "burla.cli", "sim", "headline"],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert "time to all results" in done.stdout
