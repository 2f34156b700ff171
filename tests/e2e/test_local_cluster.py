"""The local cluster's life: started by the first call, reused, sized, stopped, idle-stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BURLA = str(Path(sys.executable).parent / "burla")


def run(args: list[str], root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "BURLA_LOCAL_DIR": str(root), **env}
    return subprocess.run(args, env=environment, capture_output=True, text=True, timeout=120)


@pytest.fixture
def root(tmp_path: Path):
    root = tmp_path / "local"
    yield root
    run([BURLA, "local", "down"], root)


def test_up_status_down_and_cpus(root: Path):
    assert run([BURLA, "local", "status"], root).returncode == 3
    up = run([BURLA, "local", "up", "--cpus", "3"], root)
    assert up.returncode == 0, up.stderr
    assert "started" in up.stdout
    assert "3 CPUs" in up.stdout
    again = run([BURLA, "local", "up"], root)
    assert "already running" in again.stdout
    deadline = time.monotonic() + 30
    while True:
        status = json.loads(run([BURLA, "local", "status", "--json"], root).stdout)
        if status["ready"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status["running"] is True
    assert [n["cpus"] for n in status["nodes"]] == [3]
    assert status["nodes"][0]["state"] == "ready"
    bigger = run([BURLA, "local", "up", "--cpus", "5"], root)
    assert "already running" in bigger.stdout
    assert "already runs with 3 CPUs, not the 5 asked for" in bigger.stderr
    assert "`burla local down`, then `burla local up --cpus 5`" in bigger.stderr
    down = run([BURLA, "local", "down"], root)
    assert down.stdout.strip() == "local cluster stopped"
    assert run([BURLA, "local", "status"], root).returncode == 3
    assert run([BURLA, "local", "down"], root).stdout.strip() == "no local cluster was running"


def test_first_call_starts_it_later_calls_from_other_processes_reuse_it(root: Path, tmp_path):
    # The caller's own module, beside its script, travels by value: the cluster was started
    # by another process and its workers cannot import it.
    (tmp_path / "helpers.py").write_text("def triple(x):\n    return 3 * x\n")
    script = tmp_path / "client.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os
            from helpers import triple
            from burla import remote_parallel_map
            from burla.client import local
            print(json.dumps({"results": remote_parallel_map(triple, [1, 2], spinner=False),
                              "pid": local.read(local.local_dir()).pid}))
            """
        )
    )
    first = run([sys.executable, str(script)], root, BURLA_LOCAL_CPUS="2")
    second = run([sys.executable, str(script)], root)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["results"] == two["results"] == [3, 6]
    assert one["pid"] == two["pid"], "the second process started another cluster"


def test_a_cluster_of_another_burla_is_started_anew(root: Path):
    up = run([BURLA, "local", "up", "--cpus", "2"], root)
    assert up.returncode == 0, up.stderr
    info = json.loads((root / "cluster.json").read_text())
    assert info["install"]  # this burla's mark
    # As if the running cluster had been started before burla was installed anew.
    (root / "cluster.json").write_text(json.dumps({**info, "install": "another-burla"}))
    call = (
        "import json, warnings\n"
        "from burla import remote_parallel_map\n"
        "from burla.client import local\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    results = remote_parallel_map(abs, [-1, -2], spinner=False)\n"
        "print(json.dumps({'results': results, 'pid': local.read(local.local_dir()).pid,\n"
        "                  'warned': [type(w.message).__name__ for w in caught]}))\n"
    )
    called = run([sys.executable, "-c", call], root)
    assert called.returncode == 0, called.stderr
    answer = json.loads(called.stdout)
    assert answer["results"] == [1, 2]
    assert answer["warned"] == ["ClusterRestartedWarning"]
    assert answer["pid"] != info["pid"]
    with pytest.raises(ProcessLookupError):  # the old main_service was stopped
        os.kill(info["pid"], 0)
    again = run([sys.executable, "-c", call], root)
    assert json.loads(again.stdout)["warned"] == []  # the new one runs this burla


def test_the_cluster_stops_itself_when_idle(root: Path):
    started = run(
        [sys.executable, "-c", "from burla import remote_parallel_map as m; m(abs, [1])"],
        root,
        BURLA_LOCAL_IDLE_S="2",
    )
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 30
    while (root / "cluster.json").exists():
        assert time.monotonic() < deadline, "the idle cluster kept running"
        time.sleep(0.2)
    assert run([BURLA, "local", "status"], root).returncode == 3


def test_progress_bar_on_a_terminal(root: Path, tmp_path: Path):
    script = tmp_path / "bar.py"
    script.write_text(
        "import time\n"
        "from burla import remote_parallel_map\n"
        "remote_parallel_map(time.sleep, [0.2] * 10)\n"
        "print('DONE')\n"
    )
    # `script` gives the client a pseudo-terminal, as a user's shell would.
    shown = run(["script", "-qec", f"{sys.executable} {script}", "/dev/null"], root)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "burla" in shown.stdout
    assert "/10" in shown.stdout
    assert "DONE" in shown.stdout


def test_a_call_that_asks_for_another_size_is_told_the_cluster_keeps_its_own(root: Path):
    assert run([BURLA, "local", "up", "--cpus", "2"], root).returncode == 0
    script = textwrap.dedent(
        """
        import warnings
        from burla import remote_parallel_map
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            print(remote_parallel_map(abs, [-1], spinner=False))
        print([f"{w.category.__name__}: {w.message}" for w in caught])
        """
    )
    ran = run([sys.executable, "-c", script], root, BURLA_LOCAL_CPUS="4")
    assert ran.returncode == 0, ran.stderr
    result, warned = ran.stdout.splitlines()
    assert result == "[1]"
    assert "SettingIgnoredWarning: the local cluster already runs with 2 CPUs, not the 4" in warned


def test_start_waits_for_the_launch_begun_before_it(root: Path, monkeypatch):
    from burla.client import local

    launched = []
    real_launch = local._launch
    monkeypatch.setattr(local, "_launch", lambda *a: launched.append(a) or real_launch(*a))
    monkeypatch.setenv("BURLA_LOCAL_CPUS", "1")
    local.launch(root)
    local.launch(root)  # one launch is under way: no second one
    cluster = local.start(root)
    assert len(launched) == 1
    assert local.find(root) == cluster
    assert local.start(root) == cluster  # running: nothing is launched


def test_a_launch_too_old_to_be_waited_for_is_not(root: Path, monkeypatch):
    from burla.client import local

    monkeypatch.setenv("BURLA_LOCAL_CPUS", "1")
    done = subprocess.Popen(["true"])
    done.wait()
    long_ago = time.monotonic() - local.START_TIMEOUT_S - 1
    monkeypatch.setitem(local._launches, root, (long_ago, done))
    local.launch(root)
    assert local._launches[root][1] is not done  # launched anew
    assert local.start(root).pid > 0


def test_a_launch_that_fails_says_why(root: Path, monkeypatch):
    from burla.client import local
    from burla.core.errors import ClusterUnavailableError

    monkeypatch.setenv("BURLA_LOCAL_IDLE_S", "soon")
    local.launch(root)
    with pytest.raises(ClusterUnavailableError, match=r"could not start: .*'--idle-s'"):
        local.start(root)
