"""Environment replication on a cloud cluster: the package's archive goes to Cloud Storage
(the emulator) once, and a node fetches it from there once, then links it per job."""

from __future__ import annotations

import importlib.metadata
import sysconfig

import httpx
import pytest

from burla import remote_parallel_map
from burla.core.environment import PythonPackage, package_blob_key
from burla.core.models import DEFAULT_PYTHON_VERSION
from tests.e2e.test_packages import parses_ini
from tests.e2e_gcp.conftest import GcpCluster

pytestmark = pytest.mark.integration

PACKAGE = PythonPackage(name="iniconfig", version=importlib.metadata.version("iniconfig"))


def stored_generation(gcp: GcpCluster, key: str) -> str:
    """The generation of the cluster's object at `key` (under its cluster's namespace) in
    the bucket: it changes if the object is written again."""
    url = f"{gcp.storage_url}/storage/v1/b/{gcp.bucket}/o"
    response = httpx.get(url, params={"prefix": gcp.cluster}, timeout=30)
    response.raise_for_status()
    (found,) = [o for o in response.json().get("items", []) if o["name"].endswith(f"/{key}")]
    return str(found["generation"])


def test_a_package_reaches_cloud_nodes_through_cloud_storage_once(gcp: GcpCluster) -> None:
    inputs = ["[section]\nkey = one\n", "[section]\nkey = two\n"]
    assert remote_parallel_map(parses_ini, inputs, backend="gcp", spinner=False) == [
        {"key": "one"},
        {"key": "two"},
    ]
    key = package_blob_key(PACKAGE, DEFAULT_PYTHON_VERSION, sysconfig.get_platform())
    generation = stored_generation(gcp, key)
    packages = gcp.token_file.parent / "vm-local" / "packages"
    (unpacked,) = (packages / "unpacked").glob(f"*/*/{PACKAGE.name}-{PACKAGE.version}")
    fetched = unpacked.stat().st_ino

    assert remote_parallel_map(parses_ini, inputs[:1], backend="gcp", spinner=False) == [
        {"key": "one"}
    ]
    assert stored_generation(gcp, key) == generation  # not built again
    assert unpacked.stat().st_ino == fetched  # not fetched again
