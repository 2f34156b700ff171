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
    assert report["store_calls"]["store.claim"]["calls"] >= 125  # every node claims
    assert report["service_cpu"]["main_service"]["busy_s"] > 0
    assert report["checks"]["inputs_lost"] == 0


def test_burla_sim_headline_prints_the_time_to_all_results() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "burla.cli", "sim", "headline"],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert "time to all results" in done.stdout
