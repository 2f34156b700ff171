"""`burla plan`: the scheduler's decisions shown without carrying them out."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from burla.backends.gcp.prices import Price, hourly_price
from burla.cli import main


def plan_json(capsys, *args: str) -> dict:
    assert main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_seed_example(capsys):
    result = plan_json(capsys, "--standby", "5x96", "--inputs", "1000")
    assert result["cpus_now"] == 480
    assert result["nodes_to_start"] == 11
    assert result["new_nodes_for_job"] == 6
    assert result["nodes_joining_now"] == 5


def test_kill_plan_example(capsys):
    result = plan_json(
        capsys, "--standby", "5x96", "--inputs", "1000", "--func-cpu", "32", "--node-cpus", "96"
    )
    assert result["containers_kept_per_node"] == 3
    assert result["containers_killed_per_node"] == 93
    assert result["cpus_now"] == 480


def test_cold_cluster(capsys):
    result = plan_json(capsys, "--node-cpus", "96", "--inputs", "1000")
    assert result["cpus_now"] == 0
    assert result["nodes_to_start"] == 11


def test_several_images_are_all_killed_but_the_jobs(capsys):
    result = plan_json(capsys, "--standby", "1x4", "--inputs", "8", "--images", "3")
    assert result["containers_per_node"] == 12
    assert result["containers_kept_per_node"] == 4
    assert result["containers_killed_per_node"] == 8


def test_table_without_json(capsys):
    assert main(["plan", "--standby", "5x96", "--inputs", "1000"]) == 0
    out = capsys.readouterr().out
    assert "CPUs working now" in out
    assert "480" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--standby", "5y96", "--inputs", "1"], "not COUNTxCPUS"),
        (["--standby", "5x96", "--inputs", "-1"], "--inputs"),
        (["--standby", "5x96", "--inputs", "1", "--func-cpu", "97"], "largest is 96-cpu"),
        (["--inputs", "1"], "give --standby"),
        (["--standby", "5x96"], "--inputs"),
        (["--standby", "5xz9-tiny-4", "--inputs", "1"], "not one burla can size"),
        (["--node-cpus", "8", "--machine-type", "e2-standard-8", "--inputs", "1"], "not both"),
        (["--standby", "5x96", "--inputs", "1", "--seconds-per-input", "0"], "--seconds-per"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(capsys, args, message):
    assert main(["plan", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("burla: error: ")
    assert message in err


def test_console_script_is_installed():
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "burla"),
            "plan",
            "--standby",
            "5x96",
            "--inputs",
            "1000",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["nodes_to_start"] == 11


def test_help_shows_an_example(capsys):
    assert main(["plan", "--help"]) == 0
    assert "burla plan --standby 5x96 --inputs 1000" in capsys.readouterr().out


def list_price(machine_type: str, region: str = "us-central1") -> float:
    price = hourly_price(machine_type, region)
    assert isinstance(price, Price)
    return price.usd_per_hour


def test_the_seeds_job_costs_its_nodes_time_at_list_price(capsys):
    """11 n2-standard-96 nodes (5 standby, 6 new) run the 1,000 inputs of a minute in one
    wave; at least 1,000 minutes of inputs, 96 at once per node."""
    result = plan_json(
        capsys,
        *("--standby", "5xn2-standard-96", "--inputs", "1000", "--seconds-per-input", "60"),
        *("--region", "us-central1"),
    )
    hourly = list_price("n2-standard-96")
    cost = result["cost"]
    assert cost["usd_per_node_hour"] == hourly
    assert "n2 on-demand list price in us-central1 of 2026-07-30" in cost["price"]
    estimated = cost["estimate"]
    assert (estimated["nodes"], estimated["inputs_per_node"]) == (11, 96)
    assert estimated["node_hours"] == pytest.approx(11 / 60)
    assert estimated["usd"] == pytest.approx(11 / 60 * hourly)
    assert estimated["least_usd"] == pytest.approx(1000 / 96 / 60 * hourly)
    assert result["max_cost"] is None


def test_the_cost_says_it_is_an_estimate_from_list_prices_of_their_date(capsys):
    args = ["--machine-type", "e2-standard-4", "--inputs", "100", "--seconds-per-input", "30"]
    assert main(["plan", *args, "--region", "europe-west1", "--spot"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "node-hours (estimate)" in out
    assert "0.21 (25 nodes x 30 s)" in out
    assert "An estimate, not a bill: e2-standard-4" in out
    assert "e2 spot list price in europe-west1 of 2026-07-30" in out


def test_the_region_comes_from_the_settings_zone(capsys, monkeypatch):
    monkeypatch.setenv("BURLA_GCP_ZONE", "asia-east1-b")
    result = plan_json(capsys, "--machine-type", "n2-standard-8", "--inputs", "8")
    assert result["cost"]["usd_per_node_hour"] == list_price("n2-standard-8", "asia-east1")
    assert result["cost"]["estimate"] is None


def test_a_price_per_hour_prices_a_node_type_given_by_cpus(capsys):
    result = plan_json(capsys, "--standby", "1x4", "--inputs", "8", "--seconds-per-input", "900")
    assert result["cost"]["usd_per_node_hour"] is None
    assert "4-cpu is no Compute Engine machine type" in result["cost"]["price"]
    args = ("--standby", "1x4", "--inputs", "8", "--seconds-per-input", "900")
    result = plan_json(capsys, *args, "--price-per-hour", "2")
    # 8 inputs, 4 at once on one node: two waves of 15 minutes.
    assert result["cost"]["estimate"]["node_hours"] == pytest.approx(0.5)
    assert result["cost"]["estimate"]["usd"] == pytest.approx(1.0)


def test_max_cost_says_whether_the_job_would_be_refused(capsys):
    args = ("--standby", "1x4", "--inputs", "8", "--seconds-per-input", "900")
    priced = (*args, "--price-per-hour", "2")
    assert plan_json(capsys, *priced, "--max-cost", "1.5")["max_cost"]["refused"] is False
    refused = plan_json(capsys, *priced, "--max-cost", "0.5")["max_cost"]
    assert refused["refused"] is True
    assert "would cost at least $1.0000, over its max_cost=$0.5" in refused["why"]
    unpriced = plan_json(capsys, *args, "--max-cost", "0.5")["max_cost"]
    assert "cannot be kept: node type 4-cpu has no price" in unpriced["why"]
