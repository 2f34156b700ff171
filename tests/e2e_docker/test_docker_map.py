"""remote_parallel_map with backend="docker": this machine's main_service and node_service
processes, with every worker in a real Docker container of burla's default image."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from burla import (
    BackendError,
    ClusterUnavailableError,
    InputTimeoutError,
    OutOfMemoryError,
    WorkerCrashedError,
    remote_parallel_map,
)
from burla.backends.docker.cluster import cluster_containers, remove_cluster_containers
from burla.backends.local.store import SqliteStore
from burla.client import local
from burla.client.map import job_results
from burla.core.clock import WallClock
from burla.core.models import ContainerSpec, NodeType, StandbyDefinition
from burla.services.main_service.boot import check_docker
from burla.services.store_keys import STANDBY_KEY
from tests.e2e.waiting import wait_for
from tests.e2e_docker.conftest import DockerCluster

pytestmark = pytest.mark.integration


def double(x):
    return 2 * x


def test_results_come_back_in_input_order(docker_cluster: DockerCluster) -> None:
    results = remote_parallel_map(double, range(200), backend="docker", spinner=False)
    assert results == [2 * x for x in range(200)]


def test_the_workers_are_docker_containers_of_the_default_image(
    docker_cluster: DockerCluster,
) -> None:
    def describe(x):
        import os
        import sys
        import time

        time.sleep(1)  # long enough for the test to list the containers meanwhile
        with open("/proc/1/cmdline", "rb") as first_process:
            init = first_process.read().split(b"\0")[0].decode()
        return os.environ["BURLA_CONTAINER_NAME"], init, sys.executable

    job_id = remote_parallel_map(describe, range(4), backend="docker", detach=True)
    during = docker_cluster.containers()
    results = job_results(job_id, backend="docker")

    cpus = docker_cluster.info.cpus
    assert len(during) == cpus  # one per CPU of the node, running the job now
    assert {c.attrs["Config"]["Image"] for c in during} == {docker_cluster.image}
    names = {c.labels["burla.name"] for c in during}
    assert {name for name, _, _ in results} <= names
    # Each ran in its own PID namespace under docker-init, with the image's python.
    assert {(init, python) for _, init, python in results} == {
        ("/sbin/docker-init", "/usr/bin/python")
    }


def test_a_remote_exception_is_raised_as_its_own_type_with_the_input_index(
    docker_cluster: DockerCluster,
) -> None:
    def picky(x):
        if x == 3:
            raise KeyError(f"no {x}")
        return x

    with pytest.raises(KeyError, match="no 3") as caught:
        remote_parallel_map(picky, range(5), backend="docker", spinner=False)
    assert caught.value.burla_input_index == 3  # type: ignore[attr-defined]


def test_printed_lines_reach_the_caller(
    docker_cluster: DockerCluster, capfd: pytest.CaptureFixture[str]
) -> None:
    def talk(x):
        import sys

        print(f"out {x}")
        print(f"err {x}", file=sys.stderr)
        return x

    remote_parallel_map(talk, range(3), backend="docker", spinner=False)
    out, err = capfd.readouterr()
    assert sorted(out.splitlines()) == ["out 0", "out 1", "out 2"]
    assert sorted(err.splitlines()) == ["err 0", "err 1", "err 2"]


def test_a_big_input_is_read_from_the_blob_store_inside_the_container(
    docker_cluster: DockerCluster,
) -> None:
    big = [bytes([n]) * (3 << 20) for n in range(2)]  # over the 1 MB inline limit

    def summary(data):
        return len(data), data[0], data[-1]

    assert remote_parallel_map(summary, big, backend="docker", spinner=False) == [
        (3 << 20, 0, 0),
        (3 << 20, 1, 1),
    ]


def test_a_worker_that_exits_is_a_crash_and_the_next_job_runs(
    docker_cluster: DockerCluster,
) -> None:
    def exit_on_one(x):
        import os

        if x == 1:
            os._exit(3)
        return x

    assert remote_parallel_map(double, [1], backend="docker", spinner=False) == [2]  # warm
    before = _ids_by_name(docker_cluster)
    assert before, "no worker containers run on the warm cluster"
    with pytest.raises(WorkerCrashedError) as caught:
        remote_parallel_map(exit_on_one, range(3), backend="docker", spinner=False)
    assert caught.value.burla_input_index == 1
    assert remote_parallel_map(double, [21], backend="docker", spinner=False) == [42]

    # The dead worker's container is replaced by a new one of the same name (so may
    # others that still ran the failed job's inputs when it was canceled); the node does
    # that in the background, so the next job may have run before it is done.
    def replaced() -> bool:
        after = _ids_by_name(docker_cluster)
        return any(after.get(name, old) != old for name, old in before.items())

    wait_for(replaced, timeout_s=30)


def test_a_per_input_timeout_stops_the_container_running_it(
    docker_cluster: DockerCluster,
) -> None:
    def nap(x):
        import time

        time.sleep(x)
        return x

    # The node sees how long an input has run in the status file its worker keeps.
    with pytest.raises(InputTimeoutError, match="timeout") as caught:
        remote_parallel_map(nap, [0, 30], timeout=1, backend="docker", spinner=False)
    assert caught.value.burla_input_index == 1
    assert remote_parallel_map(nap, [0.1], timeout=5, backend="docker", spinner=False) == [0.1]


def test_func_cpu_gives_fewer_containers_with_more_cpus_each(
    docker_cluster: DockerCluster,
) -> None:
    def cpus(x):
        import os

        return os.environ["BURLA_CONTAINER_NAME"], len(os.sched_getaffinity(0))

    total = docker_cluster.info.cpus
    results = remote_parallel_map(cpus, range(4), func_cpu=total, backend="docker", spinner=False)
    # One container ran them all, moved by Docker onto every CPU of the node.
    assert len({name for name, _ in results}) == 1
    assert {count for _, count in results} == {min(total, len(os.sched_getaffinity(0)))}
    # Back in standby: one container per CPU again, each on one CPU.
    results = remote_parallel_map(cpus, range(8), backend="docker", spinner=False)
    assert {count for _, count in results} == {1}


def _ids_by_name(cluster: DockerCluster) -> dict[str, str]:
    """The cluster's running containers: Docker name -> id."""
    return {container.name: container.id for container in cluster.containers()}


def test_a_second_job_starts_warm_on_the_same_containers(docker_cluster: DockerCluster) -> None:
    def where(x):
        import os

        return os.environ["BURLA_CONTAINER_NAME"]

    remote_parallel_map(where, range(4), backend="docker", spinner=False)
    before = {c.labels["burla.name"]: c.id for c in docker_cluster.containers()}
    [name] = remote_parallel_map(where, [5], backend="docker", spinner=False)
    after = {c.labels["burla.name"]: c.id for c in docker_cluster.containers()}
    # No container was started for it (an extra node left from an earlier test may have
    # gone meanwhile), and the one that ran it was already running before.
    assert set(after.values()) <= set(before.values())
    assert after[name] == before[name]


def test_a_function_in_a_container_can_call_remote_parallel_map_itself(
    docker_cluster: DockerCluster,
) -> None:
    def outer(x):
        from burla import remote_parallel_map

        return sum(remote_parallel_map(abs, [-x, -x - 1], spinner=False))

    assert remote_parallel_map(outer, [1, 10], backend="docker", spinner=False) == [3, 21]


def test_a_nested_call_can_send_big_inputs_too(docker_cluster: DockerCluster) -> None:
    def outer(x):
        from burla import remote_parallel_map

        return remote_parallel_map(len, [bytes(2 << 20), bytes(x)], spinner=False)

    assert remote_parallel_map(outer, [5], backend="docker", spinner=False) == [[2 << 20, 5]]


def test_the_cluster_removes_containers_its_nodes_left_when_it_starts(
    docker_cluster: DockerCluster,
) -> None:
    """A node killed before it could stop its containers leaves them running; the next
    main_service of that directory removes them before its first node starts."""
    # Sharing nothing with the session's cluster: its own directory, its own labels.
    root = docker_cluster.root.parent / "burla-docker-restart"
    engine = docker_cluster.engine
    cluster = local.start(root, backend="docker")
    try:
        wait_for(lambda: len(cluster_containers(engine, root)) == cluster.cpus)
        first = cluster_containers(engine, root)
        node = json.loads((root / "nodes" / "node-000001" / "node.json").read_text())
        # main_service first, so that it cannot replace the node; the node at once after,
        # before it notices its parent is gone and stops its containers itself.
        os.kill(cluster.pid, signal.SIGKILL)
        os.kill(node["pid"], signal.SIGKILL)
        wait_for(lambda: not _alive(cluster.pid) and not _alive(node["pid"]))
        assert cluster_containers(engine, root) == first  # left behind

        local.start(root, backend="docker")
        wait_for(lambda: len(cluster_containers(engine, root)) == cluster.cpus)
        again = cluster_containers(engine, root)
        assert not set(again.values()) & set(first.values())
    finally:
        local.stop(root)
        left = remove_cluster_containers(engine, root)
    assert left == []  # the stopped cluster removed its own


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"


# When the cluster cannot work: a clear error at once, never a hang.


def test_without_a_docker_engine_the_start_fails_at_once_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    root = tmp_path / "cluster"
    started = time.monotonic()
    with pytest.raises(ClusterUnavailableError, match=r"main\.log"):
        local.start(root, backend="docker")
    assert time.monotonic() - started < local.START_TIMEOUT_S  # it did not wait it out
    log = (root / "main.log").read_text()
    assert "could not reach the Docker engine" in log
    assert "start dockerd" in log
    assert not (root / "cluster.json").exists()


def test_the_missing_default_image_is_named_with_how_to_build_it(default_image: str) -> None:
    check_docker(default_image)
    with pytest.raises(BackendError, match=r"no image 'burla-missing:1'.*`burla image build`"):
        check_docker("burla-missing:1")


def test_a_docker_node_without_its_image_exits_saying_so(
    default_image: str, tmp_path: Path
) -> None:
    async def write_standby() -> None:
        store = SqliteStore(tmp_path / "store.db", WallClock())
        try:
            standby = StandbyDefinition(containers=(ContainerSpec(image="burla-missing:1"),))
            await store.put(STANDBY_KEY, standby.model_dump(mode="json"))
        finally:
            store.close()

    anyio.run(write_standby)
    node_dir = tmp_path / "nodes" / "node-1"
    node_dir.mkdir(parents=True)
    env = {
        **os.environ,
        "BURLA_NODE_ID": "node-1",
        "BURLA_NODE_TYPE": NodeType(name="local", cpus=1, ram_gb=4).model_dump_json(),
        "BURLA_MAIN_URL": "http://127.0.0.1:9",  # never reached: the node stops first
        "BURLA_NODE_DIR": str(node_dir),
        "BURLA_STORE_URL": f"sqlite://{tmp_path / 'store.db'}",
        "BURLA_BLOBS_URL": f"file://{tmp_path / 'blobs'}",
        "BURLA_SECRET": "00" * 32,
        "BURLA_LOCAL_DIR": str(tmp_path),
        "BURLA_CONTAINERS": "docker",
    }
    done = subprocess.run(
        [sys.executable, "-m", "burla.services.node_service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "node node-1 cannot run: the Docker engine has no image 'burla-missing:1'" in (
        done.stderr
    )
    assert "`burla image build`" in done.stderr


def test_the_burla_command_manages_the_docker_cluster(docker_cluster: DockerCluster) -> None:
    from click.testing import CliRunner

    from burla.cli import cli

    status = CliRunner().invoke(cli, ["local", "status", "--backend", "docker", "--json"])
    assert status.exit_code == 0, status.output
    state = json.loads(status.output)
    assert state["url"] == docker_cluster.info.url
    assert [node["state"] for node in state["nodes"]] == ["ready"]
    up = CliRunner().invoke(cli, ["local", "up", "--backend", "docker"])
    assert up.exit_code == 0, up.output
    assert f"already running at {docker_cluster.info.url}" in up.output


def test_a_container_over_func_ram_is_killed_by_docker_and_named_out_of_memory(
    docker_cluster: DockerCluster,
) -> None:
    def hog_on_one(x):
        if x == 1:
            return len(b"x" * (1 << 30))
        return x

    with pytest.raises(OutOfMemoryError, match=r"input 1 failed.*func_ram=0\.25 GB") as caught:
        remote_parallel_map(hog_on_one, range(3), func_ram=0.25, backend="docker", spinner=False)
    assert caught.value.burla_input_index == 1
    assert remote_parallel_map(double, [21], backend="docker", spinner=False) == [42]
