"""The `burla` command against a real local cluster of its own: JSON for scripts, tables
for people, exit codes that say what happened, refusals of bad arguments."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from burla import remote_parallel_map
from burla.cli import main
from burla.client import local
from burla.client.map import Session
from tests.e2e.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local.ClusterInfo]:
    """A cluster of this module's own: the tests restart it and change its standby set."""
    root = tmp_path_factory.mktemp("burla-cli")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BURLA_LOCAL_DIR", str(root))
        patch.delenv("BURLA_BACKEND", raising=False)
        try:
            yield local.start(root, cpus=2)
        finally:
            Session.close_all()
            local.stop(root)


def burla(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def burla_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code, out, err = burla(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def shout_or_fail(x: int) -> int:
    print(f"line from input {x}")
    if x == 2:
        raise ValueError(f"input {x} is bad")
    return x


def double(x: int) -> int:
    return 2 * x


def slow(x: int) -> int:
    time.sleep(5)
    return x


def test_cluster_status_nodes_and_local_status(cli_cluster, capsys):
    wait_for(lambda: burla_json(capsys, "cluster", "status")["ready"] == 1)
    status = burla_json(capsys, "cluster", "status")
    assert status["url"] == cli_cluster.url
    assert status["cpus"] == 2
    assert status["nodes_by_type"] == {"local": {"ready": 1}}
    assert status["standby"]["nodes"][0]["count"] == 1
    nodes = burla_json(capsys, "nodes")
    assert [(n["node_id"], n["cpus"], n["state"]) for n in nodes] == [("node-000001", 2, "ready")]
    assert burla_json(capsys, "local", "status")["running"] is True
    code, out, _ = burla(capsys, "cluster", "status")
    assert code == 0
    assert "ready" in out
    assert f"{cli_cluster.url}/dashboard" in out


def test_a_failed_job_its_lines_and_its_traceback(cli_cluster, capsys):
    job_id = remote_parallel_map(shout_or_fail, range(4), detach=True)
    code, out, err = burla(capsys, "jobs", "result", job_id)
    assert code == 1
    assert out == ""  # its printed lines go to stderr, beside the traceback
    assert "ValueError: input 2 is bad" in err

    code, out, _ = burla(capsys, "jobs", "show", job_id, "--json")
    assert code == 1  # the job failed
    shown = json.loads(out)
    assert shown["state"] == "failed"
    assert shown["inputs"] == {"succeeded": 3, "failed": 1}
    [error] = shown["errors"]
    assert error["input"] == 2
    assert error["text"].startswith("Traceback (most recent call last)")
    assert "ValueError: input 2 is bad" in error["text"]

    code, out, _ = burla(capsys, "jobs", "logs", job_id, "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert {"input": 1, "stream": "stdout", "text": "line from input 1\n"} in lines
    assert [line["input"] for line in lines if line["stream"] == "error"] == [2]

    listed = {job["job_id"]: job for job in burla_json(capsys, "jobs")}
    assert listed[job_id]["state"] == "failed"
    assert (listed[job_id]["succeeded"], listed[job_id]["failed"]) == (3, 1)
    assert listed[job_id]["never_run"] == 0  # detached: it ran every input
    code, out, _ = burla(capsys, "jobs")
    assert code == 0
    assert job_id in out


def fail_at_eight(x: int) -> int:
    if x == 8:
        raise ValueError("input 8 is bad")
    time.sleep(0.5)
    return x


def test_a_job_stopped_at_its_first_error_failed_and_says_where(cli_cluster, capsys):
    with pytest.raises(ValueError, match="input 8 is bad"):
        remote_parallel_map(fail_at_eight, range(40), spinner=False)
    job_id = burla_json(capsys, "jobs")[0]["job_id"]
    wait_for(lambda: burla_json(capsys, "jobs")[0]["state"] != "running")
    code, out, _ = burla(capsys, "jobs", "show", job_id, "--json")
    assert code == 1
    shown = json.loads(out)
    assert shown["state"] == "failed"  # not canceled: an input failed, and its caller stopped
    assert shown["failure"] == {"input": 8, "type": "ValueError", "message": "input 8 is bad"}
    counts = shown["counts"]
    assert counts["failed"] == 1
    assert counts["never_run"] > 0  # the inputs still queued when it stopped
    assert counts["succeeded"] + counts["failed"] + counts["never_run"] == 40
    assert counts["unfinished"] == 0
    code, out, _ = burla(capsys, "jobs", "show", job_id)
    assert "first failed input: 8, ValueError: input 8 is bad" in out
    assert f"{counts['never_run']} never ran" in out
    listed = {job["job_id"]: job for job in burla_json(capsys, "jobs")}
    assert listed[job_id]["never_run"] == counts["never_run"]


def print_slowly(x: int) -> int:
    time.sleep(0.3)
    print(f"step {x}")
    return x


def test_logs_follow_a_running_job_to_its_end(cli_cluster, capsys):
    job_id = remote_parallel_map(print_slowly, range(8), detach=True)
    code, out, err = burla(capsys, "jobs", "logs", job_id, "--follow", "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted((line["input"], line["text"]) for line in lines) == [
        (x, f"step {x}\n") for x in range(8)
    ]
    assert burla_json(capsys, "jobs", "show", job_id)["state"] == "succeeded"
    code, out, _ = burla(capsys, "jobs", "logs", job_id)
    assert "[3] step 3" in out.splitlines()


def test_results_of_a_detached_job(cli_cluster, capsys):
    job_id = remote_parallel_map(double, range(5), detach=True)
    code, out, err = burla(capsys, "jobs", "result", job_id, "--json")
    assert code == 0, err
    assert json.loads(out) == [0, 2, 4, 6, 8]
    code, out, _ = burla(capsys, "jobs", "result", job_id)
    assert out.splitlines() == ["0", "2", "4", "6", "8"]
    assert burla_json(capsys, "jobs", "show", job_id)["state"] == "succeeded"


def test_cancel_a_running_job(cli_cluster, capsys):
    job_id = remote_parallel_map(slow, range(10), detach=True)
    answer = burla_json(capsys, "jobs", "cancel", job_id)
    assert answer["job_id"] == job_id
    wait_for(lambda: burla(capsys, "jobs", "show", job_id)[0] == 1)
    _, out, _ = burla(capsys, "jobs", "show", job_id, "--json")
    assert json.loads(out)["state"] == "canceled"


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "show", "job-that-never-was"],
        ["jobs", "logs", "job-that-never-was"],
        ["jobs", "cancel", "job-that-never-was"],
        ["jobs", "result", "job-that-never-was"],
    ],
)
def test_a_job_that_does_not_exist_exits_4(cli_cluster, capsys, args):
    code, out, err = burla(capsys, *args)
    assert code == 4
    assert out == ""
    assert err.startswith("burla: error: ")
    assert "job-that-never-was" in err


def test_the_dashboard_link_signs_a_browser_in(cli_cluster, capsys):
    url = burla_json(capsys, "dashboard")["url"]
    assert url == f"{cli_cluster.url}/dashboard?token={cli_cluster.token}"
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        page = browser.get(url)
        assert page.status_code == 200
        assert str(page.url) == f"{cli_cluster.url}/dashboard"  # the token left the address
        assert browser.get(f"{cli_cluster.url}/cluster").status_code == 200  # by its cookie


def test_standby_show_and_set(cli_cluster, capsys, tmp_path: Path):
    definition = burla_json(capsys, "standby", "show")
    assert definition["nodes"][0]["node_type"]["cpus"] == 2
    file = tmp_path / "standby.json"
    file.write_text(json.dumps(definition))
    assert burla_json(capsys, "standby", "set", file) == definition
    wait_for(lambda: burla_json(capsys, "cluster", "status")["ready"] == 1)

    file.write_text("{not json")
    code, _, err = burla(capsys, "standby", "set", file)
    assert code == 2
    assert "is not JSON" in err
    definition["nodes"][0]["count"] = -1
    file.write_text(json.dumps(definition))
    code, _, err = burla(capsys, "standby", "set", file)
    assert code == 2
    assert "not a standby definition: nodes.0.count" in err
    code, _, err = burla(capsys, "standby", "set", tmp_path / "missing.json")
    assert code == 2
    assert "does not exist" in err


def test_cluster_restart(cli_cluster, capsys):
    restarted = burla_json(capsys, "cluster", "restart")
    assert restarted["standby"]["nodes"][0]["count"] == 1
    wait_for(lambda: burla_json(capsys, "cluster", "status")["ready"] == 1)
    assert burla_json(capsys, "jobs", "result", remote_parallel_map(double, [21], detach=True))


@pytest.mark.parametrize(
    "args",
    [
        ["cluster", "status"],
        ["cluster", "restart"],
        ["nodes"],
        ["jobs"],
        ["jobs", "show", "job-x"],
        ["standby", "show"],
        ["dashboard"],
    ],
)
def test_no_cluster_running_exits_3(capsys, monkeypatch, tmp_path, args):
    monkeypatch.setenv("BURLA_LOCAL_DIR", str(tmp_path))
    monkeypatch.delenv("BURLA_BACKEND", raising=False)
    code, _, err = burla(capsys, *args)
    assert code == 3
    assert "no local cluster is running" in err
    assert "burla local up" in err
    assert not (tmp_path / "cluster.json").exists()  # looked for one, started none


def test_no_cloud_cluster_set_exits_3(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("BURLA_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("BURLA_MAIN_URL", raising=False)
    code, _, err = burla(capsys, "nodes", "--backend", "gcp")
    assert code == 3
    assert "main_url" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs", "--bogus"], "No such option"),
        (["cluster", "status", "--backend", "moon"], "'moon' is not one of"),
        (["jobs", "show"], "Missing argument"),
        (["standby", "set"], "Missing argument"),
        (["local", "up", "--cpus", "0"], "--cpus"),
        (["flyaway"], "No such command"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(capsys, args, message):
    code, _, err = burla(capsys, *args)
    assert code == 2
    assert err.startswith("burla: error: ")
    assert err.count("\n") == 1
    assert message in err


COMMANDS = [
    ["local", "up"],
    ["local", "down"],
    ["local", "status"],
    ["cluster", "status"],
    ["cluster", "restart"],
    ["standby", "show"],
    ["standby", "set"],
    ["nodes"],
    ["jobs"],
    ["jobs", "show"],
    ["jobs", "logs"],
    ["jobs", "cancel"],
    ["jobs", "result"],
    ["dashboard"],
    ["plan"],
    ["sim"],
    ["image", "build"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_an_example(capsys, command):
    code, out, _ = burla(capsys, *command, "--help")
    assert code == 0
    assert "Example" in out
    assert f"burla {' '.join(command)}" in out


def test_the_top_help_lists_exit_codes(capsys):
    code, out, _ = burla(capsys, "--help")
    assert code == 0
    assert "Exit codes" in out
    for command in ("local", "cluster", "standby", "nodes", "jobs", "plan", "sim", "image"):
        assert command in out
