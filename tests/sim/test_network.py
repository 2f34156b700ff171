"""Network delays: between users and main_service, and between main_service and nodes."""

from __future__ import annotations

from burla.sim import run, scenario


def test_a_slow_network_to_main_service_delays_the_users_results() -> None:
    seed = scenario.load("seed")
    near = run.run(seed)
    far = run.run(seed.model_copy(update={"client_delay_s": scenario.Seconds(low=5, high=5)}))
    # The submission and its answer, then the request that brings the first result and
    # its answer: four trips of 5 s (the inputs run meanwhile).
    assert near["time_to_first_result_s"] < 1
    assert far["time_to_first_result_s"] >= 20
    assert far["checks"]["inputs_lost"] == 0


def test_a_same_region_network_costs_milliseconds() -> None:
    seed = scenario.load("seed")
    near = run.run(seed)
    region = run.run(seed.model_copy(update={"network": "same-region"}))
    extra = region["time_to_first_result_s"] - near["time_to_first_result_s"]
    assert 0 < extra < 0.1
