"""Users of one real local cluster, through the `burla` command and remote_parallel_map: the
admin (the cluster's own token) adds users and makes their tokens; each user runs jobs
and sees and cancels only their own; a revoked token is refused at once; a node refuses
a caller without the cluster's secret."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from burla import remote_parallel_map
from burla.client import local
from burla.client.map import Session
from burla.core import wire
from burla.core.errors import AuthError
from burla.core.link_wire import CheckHealth, read_from_node
from burla.core.worker_wire import Open, Refusal
from tests.e2e.test_cli import burla, burla_json

pytestmark = pytest.mark.integration


def as_user(monkeypatch: pytest.MonkeyPatch, cluster: local.ClusterInfo, token: str) -> None:
    """Talk to the cluster at its address with `token`, as a user on another machine would."""
    monkeypatch.setenv("BURLA_BACKEND", "gcp")
    monkeypatch.setenv("BURLA_MAIN_URL", cluster.url)
    monkeypatch.setenv("BURLA_TOKEN", token)


def as_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BURLA_BACKEND", "BURLA_MAIN_URL", "BURLA_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def triple(x: bytes | int) -> int:
    return 3 * (len(x) if isinstance(x, bytes) else x)


def sleepy(x: int) -> int:
    time.sleep(60)
    return x


@pytest.fixture
def users(cluster: local.ClusterInfo, capsys, monkeypatch) -> dict[str, dict[str, str]]:
    """Two users of the cluster, with a token each; removed again after the test."""
    as_admin(monkeypatch)
    made = {}
    for name in ("alice", "bob"):
        assert burla(capsys, "users", "add", name)[0] == 0
        made[name] = burla_json(capsys, "tokens", "create", name)
    yield made
    as_admin(monkeypatch)
    for name in made:
        burla(capsys, "users", "remove", name)
    Session.close_all()


def test_users_run_see_and_cancel_only_their_own_jobs(cluster, users, capsys, monkeypatch):
    alice, bob = users["alice"]["token"], users["bob"]["token"]
    big = b"x" * (2 << 20)  # goes through a signed upload URL of alice's job
    as_user(monkeypatch, cluster, alice)
    assert remote_parallel_map(triple, [1, 2, big], spinner=False) == [3, 6, 3 * len(big)]
    [done] = burla_json(capsys, "jobs")
    running = remote_parallel_map(sleepy, [1], detach=True, spinner=False)
    assert {job["job_id"] for job in burla_json(capsys, "jobs")} == {done["job_id"], running}

    as_user(monkeypatch, cluster, bob)
    assert burla_json(capsys, "jobs") == []
    for command in (["jobs", "show"], ["jobs", "logs"], ["jobs", "cancel"], ["jobs", "result"]):
        code, _, err = burla(capsys, *command, running)
        assert code == 4, (command, err)
        assert "no job" in err or "there is no job" in err
    assert burla(capsys, "jobs", "show", done["job_id"])[0] == 4

    as_admin(monkeypatch)
    everyone = {job["job_id"]: job for job in burla_json(capsys, "jobs")}
    assert everyone[running]["owner"] == everyone[done["job_id"]]["owner"] == "alice"
    assert everyone[running]["state"] == "running"  # bob's cancel did nothing

    as_user(monkeypatch, cluster, alice)
    assert burla_json(capsys, "jobs", "cancel", running)["state"] == "canceled"


def test_only_the_admin_manages_users_and_tokens(cluster, users, capsys, monkeypatch):
    listed = burla_json(capsys, "users", "list")
    assert {user["name"]: user["tokens"] for user in listed} == {"alice": 1, "bob": 1}
    tokens = burla_json(capsys, "tokens", "list")
    assert {token["user"] for token in tokens} == {"alice", "bob"}
    assert all("token" not in token and "hash" not in token for token in tokens)

    as_user(monkeypatch, cluster, users["alice"]["token"])
    for command in (["users", "list"], ["users", "add", "eve"], ["tokens", "create", "alice"]):
        code, _, err = burla(capsys, *command)
        assert code == 2, command
        assert "only the cluster's admin may do this" in err


def test_a_revoked_token_is_refused(cluster, users, capsys, monkeypatch):
    alice = users["alice"]
    as_user(monkeypatch, cluster, alice["token"])
    assert burla(capsys, "jobs")[0] == 0
    as_admin(monkeypatch)
    assert burla_json(capsys, "tokens", "revoke", alice["id"])["user"] == "alice"
    as_user(monkeypatch, cluster, alice["token"])
    code, _, err = burla(capsys, "jobs")
    assert code == 2
    assert "a valid token is needed" in err
    with pytest.raises(AuthError, match="a valid token is needed"):
        remote_parallel_map(triple, [1], spinner=False)
    as_user(monkeypatch, cluster, "a-token-never-made")
    assert burla(capsys, "cluster", "status")[0] == 2


def in_a_job(x: int) -> dict[str, object]:
    """What code running in a job holds, and who the calls it makes run as."""
    import os

    from burla import remote_parallel_map
    from burla.client.map import Session
    from burla.core.settings import load_settings

    inner = remote_parallel_map(triple, [x, x + 1], spinner=False)
    me = Session.for_settings(load_settings()).call("GET", "/me").json()
    return {"inner": inner, "me": me["user"], "variables": sorted(os.environ)}


def test_a_users_job_calls_the_cluster_as_that_user(cluster, users, capsys, monkeypatch):
    as_user(monkeypatch, cluster, users["alice"]["token"])
    [seen] = remote_parallel_map(in_a_job, [5], spinner=False)
    assert seen["inner"] == [15, 18]
    assert seen["me"] == "alice"
    assert "BURLA_JOB_TOKEN" in seen["variables"]
    assert "BURLA_TOKEN" not in seen["variables"]
    assert "BURLA_SECRET" not in seen["variables"]
    # The job and the one its code started are both alice's (a fresh alice's, so only these).
    assert sorted(job["n_inputs"] for job in burla_json(capsys, "jobs")) == [1, 2]


def test_a_node_refuses_a_caller_without_the_cluster_secret(cluster, local_dir: Path):
    remote_parallel_map(triple, [1], spinner=False)  # a node is up
    [address_file, *_] = sorted(local_dir.glob("nodes/*/address"))
    host, port = address_file.read_text().rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        hello, health = Open("a guess").to_json(), CheckHealth(1).to_json()
        sock.sendall(wire.encode_many([(hello, b""), (health, b"")]))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    [(refusal, _)] = list(wire.decode_all(answer))
    refused = read_from_node(refusal)
    assert type(refused) is Refusal
    assert "wrong or missing cluster secret" in refused.message


@pytest.mark.parametrize(
    "command",
    [
        ["users", "add"],
        ["users", "list"],
        ["users", "remove"],
        ["tokens", "create"],
        ["tokens", "list"],
        ["tokens", "revoke"],
    ],
    ids=" ".join,
)
def test_help_shows_an_example(capsys, command):
    code, out, _ = burla(capsys, *command, "--help")
    assert code == 0
    assert f"burla {' '.join(command)}" in out


def test_a_login_string_sets_up_a_users_client_in_one_step(
    cluster, users, capsys, monkeypatch, tmp_path
):
    config = tmp_path / "config.toml"
    config.write_text('[gcp]\nproject = "kept"\n')
    monkeypatch.setenv("BURLA_CONFIG", str(config))
    login_string = users["alice"]["login"]
    assert login_string.startswith("burla-login:1:")

    code, out, err = burla(capsys, "login", login_string)
    assert code == 0, err
    assert f"logged in to {cluster.url} as alice" in out
    assert config.stat().st_mode & 0o077 == 0  # it holds a token
    assert burla_json(capsys, "whoami")["user"] == "alice"
    assert remote_parallel_map(triple, [1, 2], spinner=False) == [3, 6]

    assert burla(capsys, "logout")[0] == 0
    assert config.read_text() == '\n[gcp]\nproject = "kept"\n'
    assert burla_json(capsys, "whoami")["user"] == "admin"  # the local cluster, as its admin


def test_a_damaged_or_revoked_login_string_is_refused_and_nothing_written(
    cluster, users, capsys, monkeypatch, tmp_path
):
    config = tmp_path / "config.toml"
    monkeypatch.setenv("BURLA_CONFIG", str(config))
    code, _, err = burla(capsys, "login", users["bob"]["login"][:-6])
    assert code == 2
    assert "damaged" in err or "not a login string" in err
    burla(capsys, "tokens", "revoke", users["bob"]["id"])
    code, _, err = burla(capsys, "login", users["bob"]["login"])
    assert code != 0
    assert "token" in err
    assert not config.exists()
