"""`burla cluster status` prices a cloud cluster's nodes at list price, and a local one not at
all; run against an in-process fake of main_service's `/cluster` answer."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from burla.backends.gcp.prices import Price, hourly_price
from burla.cli import main

URL = "http://10.0.0.2:8080"
# The module, not the `cluster` command group that burla.cli names the same.
CLUSTER_COMMANDS = importlib.import_module("burla.cli.cluster")


def cluster_body(
    nodes: dict[str, list[str]], spot: set[str] | None = frozenset(), **extra: Any
) -> dict[str, Any]:
    """What main_service's `/cluster` answers for nodes of these types in these states, the
    types in `spot` being spot VMs (None: an older main_service, which does not say)."""
    listed = [
        {"node_id": f"node-{i:06d}", "type": node_type, "cpus": 8, "state": state, "job_id": None}
        for i, (node_type, state) in enumerate(
            (node_type, state) for node_type, states in nodes.items() for state in states
        )
    ]
    if spot is not None:
        for node in listed:
            node["spot"] = node["type"] in spot
    by_type = {
        node_type: {state: states.count(state) for state in set(states)}
        for node_type, states in nodes.items()
    }
    standby = {"nodes": [], "containers": []}
    return {
        "nodes": listed,
        "ready": sum(1 for node in listed if node["state"] == "ready"),
        "standby": standby,
        "creation_errors": [],
        "jobs": {},
        "nodes_by_type": by_type,
        "cpus": 8 * len(listed),
        "cpus_busy": 0,
        "jobs_running": 0,
        **extra,
    }


@dataclass
class FakeClusterInfo:
    url: str


class FakeMainService:
    """Answers `/cluster` with a fixed body, as a connection to main_service would."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.cluster = FakeClusterInfo(URL)

    def call(self, method: str, path: str) -> httpx.Response:
        assert (method, path) == ("GET", "/cluster")
        return httpx.Response(200, json=self.body)


@pytest.fixture
def answer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Settings of a cloud cluster in europe-west4, and the `/cluster` body it answers."""
    monkeypatch.setenv("BURLA_CONFIG", str(tmp_path / "no-config.toml"))
    monkeypatch.setenv("BURLA_BACKEND", "gcp")
    monkeypatch.setenv("BURLA_GCP_ZONE", "europe-west4-b")

    def with_body(body: dict[str, Any]) -> None:
        monkeypatch.setattr(CLUSTER_COMMANDS, "session", lambda backend: FakeMainService(body))

    return with_body


def status(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["cluster", "status", *args]) == 0
    return capsys.readouterr().out


def price(machine_type: str) -> float:
    found = hourly_price(machine_type, "europe-west4")
    assert isinstance(found, Price)
    return found.usd_per_hour


def test_cloud_cluster_shows_each_type_and_the_total_per_hour(answer, capsys):
    answer(cluster_body({"n2-standard-8": ["ready", "busy"], "e2-standard-4": ["booting"]}, None))
    out = status(capsys)
    n2, e2 = price("n2-standard-8"), price("e2-standard-4")
    assert f"${n2:.4f}" in out
    assert f"${2 * n2:.4f}" in out
    assert f"${e2:.4f}" in out
    assert f"total: ${2 * n2 + e2:.4f} per hour" in out
    assert "list prices of 2026-07-30, on-demand, europe-west4" in out
    assert "does not say which of its VMs are spot" in out


def test_json_gains_the_cost_and_the_prices_date(answer, capsys):
    answer(cluster_body({"n2-standard-8": ["ready", "busy"], "e2-standard-4": ["booting"]}))
    state = json.loads(status(capsys, "--json"))
    expected = 2 * price("n2-standard-8") + price("e2-standard-4")
    assert state["cost_per_hour_usd"] == pytest.approx(expected, abs=1e-6)
    assert state["prices_read_on"] == "2026-07-30"
    assert state["cost_basis"] == "list prices of 2026-07-30, on-demand, europe-west4"
    assert state["cost_missing"] == {}
    assert state["url"] == URL
    assert state["cpus"] == 24


def test_a_type_without_a_list_price_shows_na_and_why(answer, capsys):
    answer(cluster_body({"n2-standard-8": ["ready"], "c4-standard-8": ["ready", "ready"]}))
    out = status(capsys)
    assert "n/a" in out
    assert f"total: at least ${price('n2-standard-8'):.4f} per hour (2 nodes without" in out
    assert "c4-standard-8: n/a, no list price for c4 in europe-west4" in out
    answer(cluster_body({"n2-standard-8": ["ready"], "c4-standard-8": ["ready", "ready"]}))
    state = json.loads(status(capsys, "--json"))
    assert state["cost_per_hour_usd"] is None
    assert "no list price for c4 in europe-west4" in state["cost_missing"]["c4-standard-8"]


def test_a_cluster_that_says_it_runs_spot_vms_is_priced_at_spot(answer, capsys):
    answer(cluster_body({"n2-standard-8": ["ready"]}, spot={"n2-standard-8"}))
    out = status(capsys)
    spot = hourly_price("n2-standard-8", "europe-west4", spot=True)
    assert isinstance(spot, Price)
    assert f"total: ${spot.usd_per_hour:.4f} per hour" in out
    assert "list prices of 2026-07-30, spot, europe-west4\n" in out
    assert "does not say" not in out


def test_spot_and_on_demand_node_types_are_each_priced_at_their_own_rates(answer, capsys):
    nodes = {"n2-standard-8": ["ready", "busy"], "e2-standard-4": ["ready"]}
    answer(cluster_body(nodes, spot={"n2-standard-8"}))
    out = status(capsys)
    spot = hourly_price("n2-standard-8", "europe-west4", spot=True)
    assert isinstance(spot, Price)
    e2 = price("e2-standard-4")
    assert spot.usd_per_hour < price("n2-standard-8")
    assert f"total: ${2 * spot.usd_per_hour + e2:.4f} per hour" in out
    assert "spot for n2-standard-8, on-demand for the others" in out
    rows = {
        line.split()[0]: line.split()[1]
        for line in out.splitlines()
        if line.startswith(("n2-standard-8 ", "e2-standard-4 "))
    }
    assert rows == {"n2-standard-8": "spot", "e2-standard-4": "on-demand"}


def test_a_spot_type_of_the_standby_definition_is_priced_at_spot_before_it_has_nodes(
    answer, capsys
):
    spot_type = {"name": "n2-standard-8", "cpus": 8, "ram_gb": 32, "spot": True}
    body = cluster_body({"n2-standard-8": []})
    body["standby"] = {"nodes": [{"node_type": spot_type, "count": 2}], "containers": []}
    answer(body)
    state = json.loads(status(capsys, "--json"))
    assert state["cost_basis"] == "list prices of 2026-07-30, spot, europe-west4"


def test_a_local_cluster_shows_no_cost(answer, capsys):
    answer(cluster_body({"local": ["ready"]}))
    out = status(capsys, "--backend", "local")
    assert "$" not in out
    assert "list prices" not in out
    answer(cluster_body({"local": ["ready"]}))
    state = json.loads(status(capsys, "--backend", "local", "--json"))
    assert state["cost_per_hour_usd"] is None
    assert state["prices_read_on"] is None
