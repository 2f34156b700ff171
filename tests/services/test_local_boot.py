"""A local cluster's nodes boot with the workers' python main_service built for them."""

from __future__ import annotations

from pathlib import Path

from burla.backends.local.envs import LOCAL_DEFAULT_IMAGE
from burla.core.models import NodeType
from burla.services.main_service.local_config import local_boot_env
from burla.services.node_service.__main__ import NodeSettings, process_runtime


def settings(root: Path, worker_python: str | None) -> NodeSettings:
    return NodeSettings(
        node_id="node-1",
        node_type=NodeType(name="local", cpus=1, ram_gb=4),
        main_url="http://127.0.0.1:1",
        node_dir=root / "nodes" / "node-1",
        store_url=f"sqlite://{root / 'store.db'}",
        blobs_url=f"file://{root / 'blobs'}",
        secret="s",
        local_dir=root,
        worker_python=worker_python,
    )


def test_a_process_cluster_names_its_workers_python_for_its_nodes(tmp_path: Path) -> None:
    env = local_boot_env(tmp_path, "token", "process")
    python = Path(env["BURLA_WORKER_PYTHON"])
    assert python.is_file()
    assert python.is_relative_to(tmp_path / "envs")
    assert "BURLA_WORKER_PYTHON" not in local_boot_env(tmp_path, "token", "docker")


def test_a_node_told_its_workers_python_builds_no_environment(tmp_path: Path) -> None:
    built = Path(local_boot_env(tmp_path / "main", "token", "process")["BURLA_WORKER_PYTHON"])
    runtime, _ = process_runtime(settings(tmp_path / "node", str(built)))
    assert runtime._python(LOCAL_DEFAULT_IMAGE, "w") == str(built)
    assert not (tmp_path / "node" / "envs").exists()


def test_a_node_not_told_builds_the_environment_itself(tmp_path: Path) -> None:
    runtime, _ = process_runtime(settings(tmp_path, None))
    python = Path(runtime._python(LOCAL_DEFAULT_IMAGE, "w"))
    assert python.is_relative_to(tmp_path / "envs")
    assert python.is_file()
