"""Hypothesis strategies for simulator scenarios: small clusters, few inputs, short times,
so that hundreds of whole simulations run in seconds."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from burla.sim.scenario import Scenario

DEFAULT_IMAGE = "default"
CUSTOM_IMAGE = "custom"


def _seconds(low: float, high: float) -> st.SearchStrategy[dict[str, float]]:
    return st.tuples(
        st.floats(low, high, allow_nan=False), st.floats(0, high - low, allow_nan=False)
    ).map(lambda pair: {"low": pair[0], "high": pair[0] + pair[1]})


@st.composite
def jobs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "at_s": draw(st.floats(0, 30, allow_nan=False)),
        "users": draw(st.integers(1, 2)),
        "spread_s": draw(st.sampled_from([0.0, 5.0])),
        "n_inputs": draw(st.integers(0, 30)),
        "func_cpu": draw(st.sampled_from([1, 1, 2])),
        "image": draw(st.sampled_from([None, None, CUSTOM_IMAGE])),
        "retries": draw(st.integers(0, 1)),
        "run_s": draw(_seconds(0, 10)),
        "function_loads": draw(st.sampled_from([True, True, True, False])),
        "blob_inputs": draw(st.booleans()),
        "raises": {"share": draw(st.sampled_from([0.0, 0.0, 0.1]))},
        "return_exceptions": draw(st.booleans()),
        "client_dies_s": draw(st.sampled_from([None, None, 20.0])),
        "resume": draw(st.one_of(st.none(), resumes())),
    }


@st.composite
def resumes(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "after_s": draw(st.sampled_from([0.0, 10.0])),
        "running": draw(st.sampled_from(["cancel", "wait"])),
        "fixed": draw(st.booleans()),
        "failed_only": draw(st.booleans()),
    }


@st.composite
def faults(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "at_s": draw(st.floats(0, 30, allow_nan=False)),
        "kind": draw(st.sampled_from(["node_death", "container_death", "main_restart"])),
        "count": draw(st.integers(1, 3)),
        "down_s": draw(st.floats(0, 20, allow_nan=False)),
    }


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    cpus = draw(st.sampled_from([2, 4, 8]))
    standby = draw(st.integers(0, 3))
    data = {
        "name": "random",
        "seed": draw(st.integers(0, 2**16)),
        "node_types": [
            {
                "name": "small",
                "cpus": cpus,
                "ram_gb": 4 * cpus,
                "boot_s": draw(_seconds(2, 15)),
                "boot_failure_rate": draw(st.sampled_from([0.0, 0.0, 0.2])),
            }
        ],
        "images": [
            {
                "image": DEFAULT_IMAGE,
                "start_s": draw(_seconds(0, 3)),
                "pull_s": draw(_seconds(0, 5)),
            },
            {"image": CUSTOM_IMAGE, "start_s": 1, "pull_s": 3, "build_s": 10},
        ],
        "standby": [{"node_type": "small", "count": standby}] if standby else [],
        "start_in_standby": draw(st.booleans()),
        "max_nodes": draw(st.one_of(st.none(), st.integers(max(standby, 1), standby + 4))),
        "release": draw(st.sampled_from(["delete", "recycle"])),
        "refill_standby": draw(st.booleans()),
        "jobs": draw(st.lists(jobs(), min_size=1, max_size=3)),
        "faults": draw(st.lists(faults(), max_size=2)),
        "store_failures": draw(st.sampled_from([0.0, 0.0, 0.1])),
        "blob_failures": draw(st.sampled_from([0.0, 0.0, 0.1])),
        "lost_answers": draw(st.sampled_from([0.0, 0.0, 0.2])),
        "link_delay_s": draw(st.sampled_from([None, None, {"low": 0.0, "high": 2.0}])),
        "client_pause_s": 5.0,
        "settle_s": 600.0,
        "max_virtual_s": 7200.0,
    }
    return Scenario.model_validate(data)
