"""What only the local backend's processes do: the worker environment, CPU pinning of
every thread, exit codes, stubborn processes and their children, what a node process is
given, and nodes that outlive the provider that started them.

Every process a test starts is stopped by a fixture or a `finally`, even when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest

import burla
from burla.backends.local import envs
from burla.backends.local.compute import LocalComputeProvider
from burla.backends.local.containers import PASSED_THROUGH, LocalContainerRuntime
from burla.backends.local.envs import ensure_worker_env
from burla.core.errors import BackendError, InvalidRequestError
from burla.core.models import ContainerSpec, NodeType
from burla.core.protocols import MachineStatus, Mount
from tests.backends.local_processes import (
    AVAILABLE,
    IMAGE,
    NODE_COMMAND,
    NODE_TYPE,
    SLEEPER,
    boot,
    node_pid,
    program,
)
from tests.contract.containers import FreePort, has_exited
from tests.contract.eventually import eventually

pytestmark = pytest.mark.integration


def mapped(cpuset: set[int]) -> set[int]:
    """The machine CPUs that virtual CPUs are pinned to, computed independently."""
    return {AVAILABLE[cpu % len(AVAILABLE)] for cpu in cpuset}


def gone(pid: int) -> bool:
    """True once `pid` has exited (reaped or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[LocalComputeProvider]:
    compute = LocalComputeProvider(tmp_path, NODE_COMMAND)
    try:
        yield compute
    finally:
        await compute.aclose()


@pytest.fixture
async def local_runtime(tmp_path: Path) -> AsyncIterator[LocalContainerRuntime]:
    runtime = LocalContainerRuntime(tmp_path, {IMAGE: sys.executable})
    try:
        yield runtime
    finally:
        await runtime.aclose()


@pytest.fixture
def helper_process() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process that must survive whatever the test does."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


# The default worker environment.


def test_worker_env_sees_burla_and_its_worker_dependencies_only(tmp_path: Path) -> None:
    python = ensure_worker_env(tmp_path)
    assert python == tmp_path / "envs" / python.parent.parent.name / "bin" / "python"
    probe = """
import importlib, json
found = {}
for name in ["burla.core.protocols", "burla.core.errors", "cloudpickle", "tblib",
             "burla.client.map", "pydantic", "click", "fastapi"]:
    try:
        importlib.import_module(name)
        found[name] = "ok"
    except ModuleNotFoundError as error:
        found[name] = type(error).__name__
print(json.dumps(found))
"""
    done = subprocess.run(
        [str(python), "-c", probe],
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {
        "burla.core.protocols": "ok",
        "burla.core.errors": "ok",
        "cloudpickle": "ok",
        "tblib": "ok",
        "burla.client.map": "ok",  # a function may call remote_parallel_map itself
        "pydantic": "ModuleNotFoundError",
        "click": "ModuleNotFoundError",
        "fastapi": "ModuleNotFoundError",
    }


def test_worker_env_is_built_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_worker_env(tmp_path)

    def refuse(*args: object) -> None:
        raise AssertionError("the worker environment was built again")

    monkeypatch.setattr(envs._WorkerEnvBuilder, "create", refuse)
    assert ensure_worker_env(tmp_path) == first
    assert os.listdir(tmp_path / "envs") == [first.parent.parent.name]


def test_worker_env_builders_racing_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    racers = 4
    all_built = threading.Barrier(racers, timeout=30)
    build = envs._build

    def build_then_wait(env_dir: Path, sources: dict[str, Path]) -> None:
        build(env_dir, sources)
        all_built.wait()  # every racer has built its own copy before anyone renames

    monkeypatch.setattr(envs, "_build", build_then_wait)
    with ThreadPoolExecutor(racers) as pool:
        pythons = set(pool.map(lambda _: ensure_worker_env(tmp_path), range(racers)))
    [python] = pythons
    assert python.exists()
    assert os.listdir(tmp_path / "envs") == [python.parent.parent.name]


def test_worker_env_links_the_packages_it_names(tmp_path: Path) -> None:
    python = ensure_worker_env(tmp_path)
    packages = python.parent.parent / "worker-packages"
    linked = set(os.listdir(packages))
    assert {"burla", "cloudpickle", "tblib", "httpx", "httpcore", "h11", "rich"} <= linked
    assert not {"pydantic", "click", "fastapi", "starlette", "uvicorn"} & linked
    assert (packages / "burla").resolve() == Path(burla.__file__).resolve().parent


# Containers beyond the contract.


@pytest.mark.anyio
async def test_container_runs_in_the_worker_env(tmp_path: Path, free_port: FreePort) -> None:
    runtime = LocalContainerRuntime(tmp_path, {IMAGE: str(ensure_worker_env(tmp_path))})
    try:
        check = "import burla.core.protocols, cloudpickle, tblib, importlib.util, sys; " + (
            "sys.exit(0 if importlib.util.find_spec('pydantic') is None else 7)"
        )
        await runtime.start(program(check), name="w", port=free_port(), cpuset=frozenset({0}))
        await eventually(lambda: has_exited(runtime, "w"))
        [info] = await runtime.list()
        assert info.exit_code == 0, (runtime.directory("w") / "container.log").read_text()
    finally:
        await runtime.aclose()


@pytest.mark.anyio
async def test_every_thread_is_pinned_to_the_mapped_cpus_and_repinned(
    local_runtime: LocalContainerRuntime, free_port: FreePort
) -> None:
    source = (
        "import pathlib, threading, time\n"
        "for _ in range(3):\n"
        "    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n"
        "pathlib.Path('ready').touch()\n"
        "time.sleep(600)\n"
    )
    await local_runtime.start(program(source), name="w", port=free_port(), cpuset=frozenset({0}))
    await eventually((local_runtime.directory("w") / "ready").exists)
    pid = local_runtime.pid("w")
    threads = os.listdir(f"/proc/{pid}/task")
    assert len(threads) >= 4
    assert {t: os.sched_getaffinity(int(t)) for t in threads} == dict.fromkeys(threads, mapped({0}))

    updated = await local_runtime.set_cpuset("w", frozenset({1}))
    assert updated.cpuset == {1}
    assert {t: os.sched_getaffinity(int(t)) for t in threads} == dict.fromkeys(threads, mapped({1}))
    assert _cpus_allowed_list(pid) == ",".join(str(cpu) for cpu in sorted(mapped({1})))


@pytest.mark.anyio
async def test_virtual_cpus_beyond_the_machine_wrap_around(
    local_runtime: LocalContainerRuntime, free_port: FreePort
) -> None:
    count = len(AVAILABLE)
    virtual = frozenset({count, 2 * count + 1})
    info = await local_runtime.start(SLEEPER, name="w", port=free_port(), cpuset=virtual)
    assert info.cpuset == virtual
    real = os.sched_getaffinity(local_runtime.pid("w"))
    assert real == mapped(set(virtual)) == {AVAILABLE[0], AVAILABLE[1 % count]}
    assert local_runtime.real_cpus(frozenset({count + 1})) == {AVAILABLE[1 % count]}


@pytest.mark.anyio
async def test_a_container_killed_by_a_signal_shows_minus_the_signal(
    local_runtime: LocalContainerRuntime, free_port: FreePort
) -> None:
    killer = program("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    await local_runtime.start(killer, name="b", port=free_port(), cpuset=frozenset({0}))
    await eventually(lambda: has_exited(local_runtime, "b"))
    exited = await local_runtime.list()
    assert [(info.name, info.running, info.exit_code) for info in exited] == [
        ("b", False, -signal.SIGKILL),
    ]
    assert await local_runtime.stop("b") is True
    assert await local_runtime.list() == []


@pytest.mark.anyio
async def test_stop_kills_a_container_that_ignores_sigterm_and_its_children(
    local_runtime: LocalContainerRuntime, free_port: FreePort
) -> None:
    source = (
        "import pathlib, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "pathlib.Path('child').write_text(str(child.pid))\n"
        "pathlib.Path('ready').touch()\n"
        "time.sleep(600)\n"
    )
    await local_runtime.start(program(source), name="w", port=free_port(), cpuset=frozenset({0}))
    await eventually((local_runtime.directory("w") / "ready").exists)
    pid = local_runtime.pid("w")
    child = int((local_runtime.directory("w") / "child").read_text())
    with anyio.fail_after(6):
        assert await local_runtime.stop("w") is True
    assert gone(pid)
    await eventually(lambda: gone(child))
    assert await local_runtime.list() == []


@pytest.mark.anyio
async def test_environment_directory_log_and_mounts(
    local_runtime: LocalContainerRuntime,
    free_port: FreePort,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BURLA_TEST_NODE_SECRET", "must not leak")
    packages = tmp_path / "packages"
    packages.mkdir()
    (packages / "data.txt").write_text("mounted")
    source = (
        "import json, os, pathlib\n"
        "print('hello from the container', flush=True)\n"
        "report = {'env': dict(os.environ), 'cwd': os.getcwd(),\n"
        "          'data': pathlib.Path('mnt/packages/data.txt').read_text()}\n"
        "pathlib.Path('report.json').write_text(json.dumps(report))\n"
    )
    port = free_port()
    await local_runtime.start(
        program(source),
        name="w",
        port=port,
        cpuset=frozenset({1, 0}),
        env={"JOB": "j-1"},
        mounts=[Mount(source=str(packages), target="/mnt/packages")],
    )
    await eventually(lambda: has_exited(local_runtime, "w"))
    directory = local_runtime.directory("w")
    assert directory == tmp_path / "containers" / "w"
    report = json.loads((directory / "report.json").read_text())
    expected = {key: os.environ[key] for key in PASSED_THROUGH if key in os.environ}
    expected |= {
        "JOB": "j-1",
        "BURLA_PORT": str(port),
        "BURLA_CONTAINER_NAME": "w",
        "BURLA_CONTAINER_ROOT": str(directory),
        "BURLA_CPUSET": "0,1",
    }
    report["env"].pop("LC_CTYPE", None)  # the interpreter may add it (PEP 538)
    assert report["env"] == expected
    assert Path(report["cwd"]) == directory.resolve()
    assert report["data"] == "mounted"
    assert (directory / "mnt" / "packages").is_symlink()
    assert (directory / "mnt" / "packages").resolve() == packages.resolve()
    assert "hello from the container" in (directory / "container.log").read_text()


@pytest.mark.anyio
async def test_requests_that_cannot_be_met_start_nothing(
    local_runtime: LocalContainerRuntime, free_port: FreePort, tmp_path: Path
) -> None:
    port = free_port()
    start = local_runtime.start
    with pytest.raises(InvalidRequestError, match=f"no image 'other'.*'{IMAGE}'"):
        await start(ContainerSpec(image="other"), name="w", port=port, cpuset=frozenset({0}))
    with pytest.raises(InvalidRequestError, match="BURLA_PORT"):
        await start(SLEEPER, name="w", port=port, cpuset=frozenset({0}), env={"BURLA_PORT": "1"})
    with pytest.raises(InvalidRequestError, match="name"):
        await start(SLEEPER, name="../w", port=port, cpuset=frozenset({0}))
    bad_mounts = [
        ([Mount(str(tmp_path), "/")], "mount target"),
        ([Mount(str(tmp_path), "/a/../../etc")], "mount target"),
        ([Mount(str(tmp_path), "container.log")], "mount target"),
        ([Mount(str(tmp_path), "/a"), Mount(str(tmp_path), "/a/b")], "overlap"),
        ([Mount(str(tmp_path / "missing"), "/data")], "mount source"),
    ]
    for mounts, message in bad_mounts:
        with pytest.raises(InvalidRequestError, match=message):
            await start(SLEEPER, name="w", port=port, cpuset=frozenset({0}), mounts=mounts)
    assert await local_runtime.list() == []
    assert not (tmp_path / "containers").exists()


# Nodes beyond the contract.


@pytest.mark.anyio
async def test_node_process_is_given_its_identity_and_listens_at_its_address(
    provider: LocalComputeProvider,
) -> None:
    await provider.create(boot("node-a", EXTRA="yes"))
    await eventually(lambda: _status(provider, "node-a", MachineStatus.RUNNING))
    machine = await provider.get("node-a")
    assert machine is not None
    assert machine.node_type == NODE_TYPE.name
    assert machine.address is not None
    host, port = machine.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5):
        pass
    env = json.loads((provider.directory("node-a") / "env.json").read_text())
    assert env["BURLA_NODE_ID"] == "node-a"
    assert NodeType.model_validate_json(env["BURLA_NODE_TYPE"]) == NODE_TYPE
    assert env["BURLA_MAIN_URL"] == "http://127.0.0.1:1"
    assert env["BURLA_NODE_DIR"] == str(provider.directory("node-a"))
    assert env["EXTRA"] == "yes"
    assert env["PATH"] == os.environ["PATH"]


@pytest.mark.anyio
async def test_node_started_by_one_provider_is_listed_and_deleted_by_another(
    tmp_path: Path,
) -> None:
    first = LocalComputeProvider(tmp_path, NODE_COMMAND)
    second = LocalComputeProvider(tmp_path, NODE_COMMAND)
    try:
        await first.create(boot("node-a"))
        await eventually(lambda: _status(first, "node-a", MachineStatus.RUNNING))
        pid = node_pid(first, "node-a")
        assert await second.list() == await first.list()
        [machine] = await second.list()
        assert (machine.node_id, machine.status) == ("node-a", MachineStatus.RUNNING)
        assert await second.delete("node-a") is True
        assert gone(pid)
        assert await first.list() == []
        assert await first.get("node-a") is None
        assert not first.directory("node-a").exists()
    finally:
        await second.aclose()
        await first.aclose()


@pytest.mark.anyio
async def test_a_node_whose_directory_goes_while_it_is_deleted_is_deleted_all_the_same(
    provider: LocalComputeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    await provider.create(boot("node-a"))
    await eventually(lambda: _status(provider, "node-a", MachineStatus.RUNNING))
    pid = node_pid(provider, "node-a")
    read_record = provider._read_record

    def read_then_lose(node_id: str) -> object:
        record = read_record(node_id)
        shutil.rmtree(provider.directory(node_id))  # another process deleting it, meanwhile
        return record

    monkeypatch.setattr(provider, "_read_record", read_then_lose)
    assert await provider.delete("node-a") is True
    assert gone(pid)


@pytest.mark.anyio
async def test_delete_kills_a_node_that_ignores_sigterm(tmp_path: Path) -> None:
    compute = LocalComputeProvider(tmp_path, NODE_COMMAND, stop_grace_s=0.2)
    try:
        await compute.create(boot("node-a", FAKE_NODE_IGNORE_SIGTERM="1"))
        await eventually(lambda: _status(compute, "node-a", MachineStatus.RUNNING))
        pid = node_pid(compute, "node-a")
        with anyio.fail_after(6):
            assert await compute.delete("node-a") is True
        assert gone(pid)
    finally:
        await compute.aclose()


@pytest.mark.anyio
async def test_a_reused_pid_is_never_signalled(
    provider: LocalComputeProvider, helper_process: subprocess.Popen[bytes]
) -> None:
    directory = provider.directory("node-old")
    directory.mkdir(parents=True)
    record = {"node_id": "node-old", "node_type": "local-2", "pid": helper_process.pid}
    (directory / "node.json").write_text(json.dumps(record | {"start_ticks": 1}))
    (directory / "address").write_text("127.0.0.1:1")
    [machine] = await provider.list()
    assert (machine.node_id, machine.status) == ("node-old", MachineStatus.FAILED)
    assert await provider.delete("node-old") is True
    assert helper_process.poll() is None
    assert not directory.exists()


@pytest.mark.anyio
async def test_a_node_that_cannot_start_is_refused(tmp_path: Path) -> None:
    compute = LocalComputeProvider(tmp_path, [str(tmp_path / "no-such-program")])
    try:
        with pytest.raises(BackendError, match="could not start node 'node-a'"):
            await compute.create(boot("node-a"))
        assert await compute.list() == []
        with pytest.raises(InvalidRequestError, match="BURLA_NODE_DIR"):
            await compute.create(boot("node-b", BURLA_NODE_DIR="/elsewhere"))
        with pytest.raises(InvalidRequestError, match="node id"):
            await compute.create(boot("../node-c"))
    finally:
        await compute.aclose()


# A spare node process.


@pytest.mark.anyio
async def test_a_spare_boots_as_the_next_node_created(provider: LocalComputeProvider) -> None:
    spare = provider.start_spare()
    await provider.create(boot("node-a", EXTRA="yes"))
    await eventually(lambda: _status(provider, "node-a", MachineStatus.RUNNING))
    assert node_pid(provider, "node-a") == spare
    directory = provider.directory("node-a")
    env = json.loads((directory / "env.json").read_text())
    assert (env["BURLA_NODE_ID"], env["EXTRA"]) == ("node-a", "yes")
    assert env["BURLA_NODE_DIR"] == str(directory)
    assert "BURLA_NODE_SPARE" not in env
    assert os.readlink(f"/proc/{spare}/cwd") == str(directory.resolve())
    assert "fake node node-a listens" in (directory / "node.log").read_text()
    # The spare is used once: the next node is a process of its own.
    await provider.create(boot("node-b"))
    await eventually(lambda: _status(provider, "node-b", MachineStatus.RUNNING))
    assert node_pid(provider, "node-b") != spare
    assert await provider.delete("node-a") is True
    assert gone(spare)


@pytest.mark.anyio
async def test_a_spare_never_used_exits_when_its_provider_closes(tmp_path: Path) -> None:
    compute = LocalComputeProvider(tmp_path, NODE_COMMAND)
    spare = compute.start_spare()
    assert compute.start_spare() == spare, "a second spare was started"
    await compute.aclose()
    assert gone(spare)
    assert await compute.list() == []


@pytest.mark.anyio
async def test_a_spare_that_died_is_replaced_by_a_new_process(
    provider: LocalComputeProvider,
) -> None:
    spare = provider.start_spare()
    os.kill(spare, signal.SIGKILL)
    await eventually(lambda: _gone(spare))
    await provider.create(boot("node-a"))
    await eventually(lambda: _status(provider, "node-a", MachineStatus.RUNNING))
    assert node_pid(provider, "node-a") != spare


async def _gone(pid: int) -> bool:
    return gone(pid)


async def _status(compute: LocalComputeProvider, node_id: str, status: MachineStatus) -> bool:
    machine = await compute.get(node_id)
    return machine is not None and machine.status is status


def _cpus_allowed_list(pid: int) -> str:
    """What the kernel reports as the process's allowed CPUs (one CPU, or a list)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"/proc/{pid}/status has no Cpus_allowed_list")
