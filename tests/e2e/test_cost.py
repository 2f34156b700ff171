"""What jobs cost on a real local cluster: node time counted (a local node costs nothing),
a price per hour set on the node type, a job stopped when its cost reaches its max_cost
with its finished results kept, a job refused before it runs, and how `burla` shows it."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from burla import BudgetExceededError, EstimateOverBudgetError, remote_parallel_map
from burla.cli import main
from burla.client import local
from burla.client.map import Session, job_results

pytestmark = pytest.mark.integration

DOLLAR_A_SECOND = 3600.0
"""A node's price per hour at which each second of its time costs a dollar."""


@pytest.fixture(scope="module")
def cost_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.ClusterInfo]:
    """A cluster of this module's own: the tests give its node type a price."""
    root = tmp_path_factory.mktemp("burla-cost")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BURLA_LOCAL_DIR", str(root))
        patch.delenv("BURLA_BACKEND", raising=False)
        try:
            yield local.start(root, cpus=2)
        finally:
            Session.close_all()
            local.stop(root)


def api(cluster: local.ClusterInfo) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.url, headers={"authorization": f"Bearer {cluster.token}"}, timeout=60
    )


def set_price(cluster: local.ClusterInfo, usd_per_hour: float | None) -> None:
    """Give the local node type this price per hour (the cluster restarts into it)."""
    with api(cluster) as http:
        standby = http.get("/cluster").json()["standby"]
        node_type = standby["nodes"][0]["node_type"]
        if node_type.get("price_per_hour") == usd_per_hour:
            return
        node_type["price_per_hour"] = usd_per_hour
        http.put("/standby", json=standby).raise_for_status()


def burla(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def record(cluster: local.ClusterInfo, job_id: str) -> dict[str, Any]:
    with api(cluster) as http:
        answer: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
        return answer


def slow(x: int, started: str) -> int:
    (Path(started) / str(x)).touch()
    time.sleep(1)
    return x


def test_a_local_node_costs_nothing_but_its_time_counts(cost_cluster, capsys):
    set_price(cost_cluster, None)
    job_id = remote_parallel_map(time.sleep, [0.5] * 4, detach=True, spinner=False)
    assert job_results(job_id) == [None] * 4
    cost = record(cost_cluster, job_id)["cost"]
    assert cost["usd"] == 0.0
    assert cost["node_seconds"] >= 1.0  # 4 inputs of half a second, 2 at once
    assert "this machine's cluster: no price" in cost["basis"]
    code, out, _ = burla(capsys, "jobs", "show", job_id)
    assert code == 0
    assert f"node time: {cost['node_seconds']:,.1f} node-seconds; cost $0.0000" in out


def test_a_job_is_stopped_when_its_cost_reaches_max_cost(cost_cluster, capsys, tmp_path: Path):
    set_price(cost_cluster, DOLLAR_A_SECOND)
    started = tmp_path / "started"
    started.mkdir()
    inputs = [(x, str(started)) for x in range(20)]  # 10 s on the node's 2 workers
    with pytest.raises(BudgetExceededError) as stopped:
        remote_parallel_map(slow, inputs, max_cost=4.0, spinner=False)
    error = stopped.value
    assert error.max_cost == 4.0
    assert 4.0 <= error.cost < 5.0  # the cap, give or take a second of node time
    assert 0 < error.finished < 20
    assert error.n_inputs == 20
    message = str(error)
    assert f"reaching its max_cost=$4, after {error.finished} of 20 inputs finished" in message
    assert f"burla jobs result {error.job_id} --return-exceptions" in message
    # The job stopped there: its other inputs never ran.
    job = record(cost_cluster, error.job_id)
    assert job["state"] == "canceled"
    assert job["budget_stop"]["finished"] == error.finished
    assert job["counts"]["never_run"] > 0
    assert len(os.listdir(started)) < 20
    # The finished results are kept and readable, each other input's place says why.
    results = job_results(error.job_id, return_exceptions=True)
    done = [r for r in results if not isinstance(r, BaseException)]
    assert len(done) == error.finished
    assert all(results[x] == x for x in done)
    missing = [r for r in results if isinstance(r, BudgetExceededError)]
    assert len(missing) == 20 - error.finished
    assert {r.burla_input_index for r in missing} == set(range(20)) - set(done)
    with pytest.raises(BudgetExceededError):
        job_results(error.job_id)
    # `burla jobs show` says what it cost and why it stopped.
    code, out, _ = burla(capsys, "jobs", "show", error.job_id)
    assert code == 1  # canceled
    assert "max_cost: $4" in out
    assert "stopped at its max_cost: its nodes came to cost $4." in out
    assert f"after {error.finished} inputs finished" in out
    assert "price_per_hour of node type local" in out
    code, out, err = burla(capsys, "jobs", "result", error.job_id, "--return-exceptions", "--json")
    assert code == 1
    printed = json.loads(out)
    assert [printed[x] for x in done] == done
    assert err.count("BudgetExceededError") <= 1
    assert err.count("was stopped, its nodes came to cost") == 1


def test_return_exceptions_gives_the_finished_results_of_a_stopped_job(cost_cluster, tmp_path):
    set_price(cost_cluster, DOLLAR_A_SECOND)
    started = tmp_path / "started"
    started.mkdir()
    inputs = [(x, str(started)) for x in range(20)]
    results = remote_parallel_map(slow, inputs, max_cost=3.0, return_exceptions=True, spinner=False)
    assert len(results) == 20
    stopped = [r for r in results if isinstance(r, BudgetExceededError)]
    assert 0 < len(stopped) < 20
    assert [r for r in results if not isinstance(r, BaseException)] == [
        x for x in range(20) if not isinstance(results[x], BaseException)
    ]


def test_a_job_over_its_max_cost_by_its_estimate_is_refused_before_it_runs(
    cost_cluster, tmp_path: Path
):
    set_price(cost_cluster, DOLLAR_A_SECOND)
    started = tmp_path / "started"
    started.mkdir()
    with api(cost_cluster) as http:
        before = len(http.get("/jobs", params={"all": True}).json()["jobs"])
    inputs = [(x, str(started)) for x in range(20)]
    with pytest.raises(EstimateOverBudgetError) as refused:
        # 20 inputs of 10 s, 2 at once: at least 100 node-seconds, $100.
        remote_parallel_map(slow, inputs, max_cost=50.0, seconds_per_input=10, spinner=False)
    assert "would cost at least $100.0000, over its max_cost=$50" in str(refused.value)
    assert "20 inputs of 10 s each, 2 at once per node" in str(refused.value)
    assert os.listdir(started) == []
    with api(cost_cluster) as http:
        assert len(http.get("/jobs", params={"all": True}).json()["jobs"]) == before
    # Within the cap by its estimate, it runs.
    assert remote_parallel_map(abs, [-1, -2], max_cost=50.0, seconds_per_input=1) == [1, 2]


def test_jobs_list_each_jobs_cost_and_each_users_total(cost_cluster, capsys):
    set_price(cost_cluster, DOLLAR_A_SECOND)
    remote_parallel_map(abs, [-1], spinner=False)
    code, out, _ = burla(capsys, "jobs", "--all", "--json")
    assert code == 0
    listed = json.loads(out)
    assert all(job["cost"]["node_seconds"] >= 0 for job in listed)
    code, out, _ = burla(capsys, "jobs", "--all")
    assert code == 0
    assert f"admin: {len(listed)} jobs listed, " in out
    code, out, _ = burla(capsys, "users", "costs", "--json")
    assert code == 0
    [admin] = json.loads(out)
    assert admin["user"] == "admin"
    assert admin["jobs"] == len(listed)
    assert admin["node_seconds"] == pytest.approx(
        sum(job["cost"]["node_seconds"] for job in listed)
    )
    assert admin["usd"] == pytest.approx(sum(job["cost"]["usd"] for job in listed))
    code, out, _ = burla(capsys, "users", "costs")
    assert code == 0
    assert "admin" in out
    assert "node-seconds" in out


def test_the_dashboard_shows_each_jobs_cost_and_each_users_total(
    cost_cluster, browser_page, tmp_path: Path
):
    set_price(cost_cluster, DOLLAR_A_SECOND)
    started = tmp_path / "started"
    started.mkdir()
    inputs = [(x, str(started)) for x in range(20)]
    with pytest.raises(BudgetExceededError) as stopped:
        remote_parallel_map(slow, inputs, max_cost=3.0, spinner=False)
    job_id = stopped.value.job_id
    page = browser_page
    page.goto(f"{cost_cluster.url}/dashboard?token={cost_cluster.token}")
    row = page.locator("#jobs tr", has_text=job_id)
    row.wait_for(timeout=60_000)
    assert re.search(r"\$[34]\.\d{4}", row.inner_text())  # its cost, in its row
    page.locator("#costs td", has_text="admin").wait_for(timeout=60_000)
    assert "$" in page.locator("#costs tbody").inner_text()
    page.goto(f"{cost_cluster.url}/dashboard#/jobs/{job_id}")
    cost = page.locator("#job-cost")
    cost.filter(has_text="stopped at its max_cost").wait_for(timeout=60_000)
    assert "max_cost $3" in cost.inner_text()
    assert "price_per_hour of node type local" in cost.inner_text()
