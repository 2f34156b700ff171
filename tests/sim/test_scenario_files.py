"""Scenario files: validated at the edge, with messages that say what to fix."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from burla.core.errors import InvalidRequestError, NotFoundError
from burla.sim import scenario
from burla.sim.scenario import Seconds


def test_a_plain_number_is_a_fixed_duration() -> None:
    fixed = Seconds.model_validate(30)
    assert (fixed.low, fixed.high) == (30, 30)
    assert fixed.draw(random.Random(1)) == 30


def test_durations_are_drawn_within_their_range_and_repeat_for_a_seed() -> None:
    spread = Seconds(low=60, high=120)
    draws = [spread.draw(random.Random(5)) for _ in range(3)]
    assert len(set(draws)) == 1
    assert 60 <= draws[0] <= 120
    capped = Seconds(low=10, high=25, dist="lognormal", sigma=2)
    assert all(capped.draw(random.Random(n)) <= 25 for n in range(100))


def test_a_scenario_naming_an_unknown_node_type_is_refused() -> None:
    text = """
name: bad
node_types: [{name: a, cpus: 2, ram_gb: 8}]
images: [{image: d}]
standby: [{node_type: b, count: 1}]
"""
    with pytest.raises(InvalidRequestError, match="node type 'b'"):
        scenario.parse(text)


def test_a_scenario_that_is_not_yaml_says_so() -> None:
    with pytest.raises(InvalidRequestError, match="not valid YAML"):
        scenario.parse("name: [unclosed")


def test_an_unknown_scenario_name_lists_the_shipped_ones() -> None:
    with pytest.raises(NotFoundError, match="seed"):
        scenario.load("nope")


def test_json_scenarios_load_too(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        '{"name": "j", "node_types": [{"name": "a", "cpus": 2, "ram_gb": 8}],'
        ' "images": [{"image": "d"}]}'
    )
    assert scenario.load(path).name == "j"


def test_the_cluster_config_keeps_the_standby_definition() -> None:
    config = scenario.load("seed").cluster_config()
    assert config.standby.nodes[0].count == 5
    assert config.standby.nodes[0].node_type.cpus == 96
    assert config.standby.defaults == {"3.11": "burla/default:py3.11"}
