"""What a simulation's checks say when nothing went wrong."""

from __future__ import annotations

from typing import Any

CLEAN_CHECKS: dict[str, Any] = {
    "inputs_lost": 0,
    "inputs_recorded_twice": 0,
    "results_missing_from_store": 0,
    "nodes_on_two_jobs": [],
    "memory_overcommitted": [],
    "resumed_inputs_run_again": 0,
    "resumed_inputs_not_run": 0,
    "resumed_results_not_whole": 0,
    "node_services_exited": 0,
    "main_service_exited": False,
    "standby_restored": True,
}
