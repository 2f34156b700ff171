"""Environment replication with Docker workers: a package the default image lacks is
installed once and reaches the containers through a read-only volume."""

from __future__ import annotations

import importlib.metadata
import sysconfig
from pathlib import Path

import pytest

from burla import remote_parallel_map
from burla.client.map import Session
from burla.core.environment import PythonPackage, package_blob_key
from burla.core.models import DEFAULT_PYTHON_VERSION
from tests.e2e.test_packages import store_doc_version
from tests.e2e_docker.conftest import DockerCluster

pytestmark = pytest.mark.integration

PACKAGE = PythonPackage(name="iniconfig", version=importlib.metadata.version("iniconfig"))


def parses_ini_where(text: str) -> tuple[dict[str, str], str, bool]:
    import os

    import iniconfig

    values = dict(iniconfig.IniConfig("job.ini", data=text)["section"].items())
    return values, iniconfig.__file__ or "", os.access(os.path.dirname(iniconfig.__file__), os.W_OK)


def test_a_package_the_image_lacks_comes_through_a_read_only_volume(
    docker_cluster: DockerCluster,
) -> None:
    probe = docker_cluster.engine.containers.run(
        docker_cluster.image, ["python", "-c", "import iniconfig"], network_mode="none", detach=True
    )
    try:
        assert probe.wait()["StatusCode"] != 0, "the default image must not have iniconfig"
    finally:
        probe.remove(force=True)

    inputs = ["[section]\nkey = one\n", "[section]\nkey = two\n"]
    results = remote_parallel_map(parses_ini_where, inputs, backend="docker", spinner=False)
    assert [values for values, _, _ in results] == [{"key": "one"}, {"key": "two"}]
    packages = docker_cluster.root.resolve() / "packages" / "envs"
    for _, file, writable in results:
        assert Path(file).is_relative_to(packages)
        assert not writable

    key = package_blob_key(PACKAGE, DEFAULT_PYTHON_VERSION, sysconfig.get_platform())
    archive = docker_cluster.root / "blobs" / key
    built = (archive.stat().st_mtime_ns, store_doc_version(docker_cluster.root, key))
    Session.close_all()
    again = remote_parallel_map(parses_ini_where, inputs[:1], backend="docker", spinner=False)
    assert again[0][0] == {"key": "one"}
    assert (archive.stat().st_mtime_ns, store_doc_version(docker_cluster.root, key)) == built
