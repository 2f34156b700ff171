"""A node's package cache: archives unpacked once, a job's set linked into one folder that
works as a sys.path entry, and a package that cannot be set up failing the job, not the
node."""

from __future__ import annotations

import importlib
import io
import socket
import sys
import tarfile
from pathlib import Path

import anyio
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryContainerRuntime, MemoryStore
from burla.core import report_wire, worker_wire
from burla.core.clock import ManualClock
from burla.core.link_wire import Report
from burla.core.models import ContainerSpec, JobSpec, NodeType
from burla.services.container_service.status import StatusFile
from burla.services.container_service.worker import Connection, Worker
from burla.services.node_service.node import NodeService
from burla.services.node_service.packages import PackageCache

pytestmark = pytest.mark.anyio


def archive(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def test_a_jobs_packages_are_linked_into_one_folder_once(tmp_path: Path) -> None:
    blobs = MemoryBlobStore(ManualClock())
    # Two packages sharing a namespace package (no __init__.py), as google-* ones do.
    await blobs.put("packages/py/p/one-1.tar.gz", archive({"ns/one.py": "N = 1\n", "a.py": ""}))
    await blobs.put("packages/py/p/two-2.tar.gz", archive({"ns/two.py": "N = 2\n"}))
    cache = PackageCache(tmp_path / "packages", blobs)
    keys = ["packages/py/p/one-1.tar.gz", "packages/py/p/two-2.tar.gz"]

    folder = await cache.environment(keys)
    assert sorted(entry.name for entry in folder.iterdir()) == ["a.py", "ns"]
    assert all(entry.is_symlink() for entry in (folder / "ns").iterdir())
    code = "import ns.one, ns.two, a; print(ns.one.N + ns.two.N)"
    ran = await anyio.run_process([sys.executable, "-c", code], env={"PYTHONPATH": str(folder)})
    assert ran.stdout.strip() == b"3"

    unpacked = cache.unpacked(keys[0])
    inode = unpacked.stat().st_ino
    await blobs.delete_prefix("packages/")  # a repeat job reads nothing from the blob store
    assert await cache.environment(keys) == folder
    assert await PackageCache(tmp_path / "packages", blobs).environment(keys) == folder
    assert unpacked.stat().st_ino == inode


async def test_a_package_that_cannot_be_set_up_fails_the_job_not_the_node(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1_000.0)
    reports: list[Report] = []

    async def report(sent: Report, payload: bytes) -> None:
        reports.append(sent)

    node = NodeService(
        node_id="node-1",
        node_type=NodeType(name="test", cpus=2, ram_gb=4),
        containers=(ContainerSpec(image="test"),),
        runtime=MemoryContainerRuntime(),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        report=report,
        clock=clock,
        status_dir=tmp_path / "status",
    )
    job = JobSpec(job_id="job-1", n_inputs=1)
    with anyio.fail_after(10):
        await node.assign(job, b"function", 1, packages=["packages/py/p/gone-1.tar.gz"])
    (event,) = [report_wire.decode_report(e) for r in reports for e in r.events]
    assert isinstance(event, worker_wire.JobErrorReport)
    assert event.job_id == "job-1"
    assert "could not set up the job's packages" in event.message
    assert "gone-1" in event.message
    assert node.health()["job_id"] == "job-1"  # the node goes on, and is reset with the job


def test_a_worker_swaps_one_jobs_packages_for_the_next_ones(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, value in ((first, "first"), (second, "second")):
        (folder / "nsburlatest").mkdir(parents=True)  # a namespace package
        (folder / "nsburlatest" / f"{value}.py").write_text("")
        (folder / "modburlatest.py").write_text(f"VALUE = {value!r}\n")
    with socket.create_server(("127.0.0.1", 0)) as server:
        left = socket.create_connection(server.getsockname())
        right, _ = server.accept()
    worker = Worker(Connection(left), StatusFile(tmp_path / "status"))
    try:
        worker.use_packages(str(first))
        assert importlib.import_module("modburlatest").VALUE == "first"
        importlib.import_module("nsburlatest.first")
        worker.use_packages(str(second))
        assert str(first) not in sys.path
        assert importlib.import_module("modburlatest").VALUE == "second"
        importlib.import_module("nsburlatest.second")
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("nsburlatest.first")
    finally:
        worker.use_packages(None)
        worker.connection.close()
        right.close()
    assert str(second) not in sys.path
    assert "modburlatest" not in sys.modules
