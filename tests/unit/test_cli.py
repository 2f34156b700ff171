"""`burla plan`: the scheduler's decisions shown without carrying them out."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
