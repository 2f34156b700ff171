"""How the cloud main_service starts, or refuses to: flags, the gcp extra, credentials,
machine types, and the URLs nodes open their Store and blob store from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from burla.backends.docker.image import default_image_tag
from burla.backends.gcp.machine_types import node_type_of
from burla.backends.local.envs import LOCAL_DEFAULT_IMAGE
from burla.backends.urls import open_blobs, open_store
from burla.core.errors import InvalidRequestError
from burla.core.settings import GcpSettings
from burla.services.cluster_keys import node_secret
from burla.services.main_service.cloud_config import CloudOptions, make_plan
from burla.services.main_service.command import cloud
from tests.e2e_gcp.conftest import NO_METADATA_SERVER, write_service_account_key

MAIN = "burla.services.main_service"
LOCAL_ONLY = {
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
    "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9",
}
"""Emulators that are never reached: nothing in these tests connects anywhere."""


def run_python(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter without credentials, settings or emulators of its own."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BURLA_", "GOOGLE_", "FIRESTORE_", "STORAGE_", "CLOUDSDK_"))
    }
    clean.update(NO_METADATA_SERVER)
    clean.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"))
    clean.update(BURLA_CONFIG=os.devnull, **env)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_python(
        tmp_path, f"from {MAIN}.__main__ import main; main({['cloud', *args]!r})", **env
    )


@pytest.mark.integration
def test_help_names_the_command(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", MAIN, "cloud", "--help"], capture_output=True, text=True, check=True
    )
    assert f"python -m {MAIN} cloud" in shown.stdout
    assert "--compute-endpoint" in shown.stdout


@pytest.mark.integration
def test_without_the_gcp_extra_it_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['google.cloud.firestore_v1'] = None\n"
        f"from {MAIN}.__main__ import main; main(['cloud', '--host=127.0.0.1'])"
    )
    started = run_python(tmp_path, code, BURLA_GCP_PROJECT="p")
    assert started.returncode == 1
    assert "pip install 'burla-cluster[gcp]'" in started.stderr
    assert "Traceback" not in started.stderr


@pytest.mark.integration
def test_without_credentials_it_says_how_to_get_them(tmp_path: Path) -> None:
    started = start(tmp_path, "--host=127.0.0.1", BURLA_GCP_PROJECT="p")
    assert started.returncode == 1
    assert "no Google Cloud credentials" in started.stderr
    assert "gcloud auth application-default login" in started.stderr
    assert "Traceback" not in started.stderr


@pytest.mark.integration
def test_signing_through_iam_without_credentials_is_a_backend_error(tmp_path: Path) -> None:
    code = (
        "from burla.backends.urls import open_blobs\n"
        "from burla.core.errors import BackendError\n"
        "try:\n"
        "    open_blobs('gs://bucket/ns?signer=iam', b'')\n"
        "except BackendError as error:\n"
        "    print(error)\n"
    )
    shown = run_python(tmp_path, code, **LOCAL_ONLY)
    assert shown.returncode == 0, shown.stderr
    assert "cannot sign URLs through IAM: no usable Google Cloud credentials" in shown.stdout


def plan_options(*args: str) -> CloudOptions:
    """The options of `cloud` given these flags, and a host and Compute API of loopback."""
    flags = ["--host=127.0.0.1", "--compute-endpoint=http://127.0.0.1:9", *args]
    return CloudOptions(**cloud.make_context("cloud", flags).params)


def test_a_plan_names_the_same_store_and_blobs_for_every_node(tmp_path: Path) -> None:
    gcp = GcpSettings(project="proj", cluster="c1", machine_type="n2-highmem-4", standby_nodes=3)
    options = plan_options(
        f"--token-file={tmp_path / 'token'}", "--node-env=EXTRA=1", "--port=8123"
    )
    plan = make_plan(options, gcp, LOCAL_ONLY)
    assert plan.url == "http://127.0.0.1:8123"
    assert (tmp_path / "token").read_text().strip() == plan.token
    assert plan.boot_env["BURLA_STORE_URL"] == "firestore://proj/c1"
    assert plan.boot_env["BURLA_BLOBS_URL"] == "gs://proj-burla/c1?signer=iam"
    # Nodes get a secret of their own, derived from the token, never the token itself.
    assert plan.boot_env["BURLA_SECRET"] == node_secret(plan.token) != plan.token
    assert plan.boot_env["EXTRA"] == "1"
    assert plan.boot_env["STORAGE_EMULATOR_HOST"] == LOCAL_ONLY["STORAGE_EMULATOR_HOST"]
    [group] = plan.config.standby.nodes
    assert (group.count, group.node_type.cpus, group.node_type.ram_gb) == (3, 4, 32)
    assert plan.config.release == "delete"
    again = make_plan(options, gcp, LOCAL_ONLY)
    assert again.token == plan.token  # read back from the file


def test_workers_run_in_containers_of_images_from_the_clusters_registry() -> None:
    options = plan_options()
    plan = make_plan(options, GcpSettings(project="proj", zone="europe-west4-b"), LOCAL_ONLY)
    assert plan.registry == "europe-west4-docker.pkg.dev/proj/burla"  # Artifact Registry
    assert plan.boot_env["BURLA_CONTAINERS"] == "docker"
    [spec] = plan.config.standby.containers
    assert spec.image == f"europe-west4-docker.pkg.dev/proj/burla/{default_image_tag()}"
    mine = GcpSettings(project="proj", registry="127.0.0.1:5000/team/")
    assert make_plan(options, mine, LOCAL_ONLY).registry == "127.0.0.1:5000/team"
    both = make_plan(options, GcpSettings(project="proj", pythons="3.13, 3.11"), LOCAL_ONLY)
    assert [(s.python_version, s.default) for s in both.config.standby.containers] == [
        ("3.13", True),
        ("3.11", True),
    ]
    assert both.config.standby.containers[0].image.endswith(default_image_tag("3.13"))
    processes = make_plan(options, GcpSettings(project="proj", containers="process"), LOCAL_ONLY)
    assert processes.registry is None
    assert processes.boot_env["BURLA_CONTAINERS"] == "process"
    assert [s.image for s in processes.config.standby.containers] == [LOCAL_DEFAULT_IMAGE]


def test_a_plan_refuses_what_cannot_work(tmp_path: Path) -> None:
    def plan(*args: str, **gcp: str) -> None:
        make_plan(plan_options(*args), GcpSettings(**gcp), LOCAL_ONLY)

    with pytest.raises(InvalidRequestError, match="name the cluster's project"):
        plan()
    with pytest.raises(InvalidRequestError, match="give --url"):
        plan("--host=0.0.0.0", project="p")
    with pytest.raises(InvalidRequestError, match="cluster name 'Big_Cluster'"):
        plan(project="p", cluster="Big_Cluster")
    with pytest.raises(InvalidRequestError, match="--node-env 'NOEQUALS'"):
        plan("--node-env=NOEQUALS", project="p")
    with pytest.raises(InvalidRequestError, match="machine type 'e2-micro'"):
        plan(project="p", machine_type="e2-micro")
    with pytest.raises(InvalidRequestError, match="containers = 'vm'"):
        plan(project="p", containers="vm")
    with pytest.raises(InvalidRequestError, match=r"default images for Python 3\.11, 3\.13"):
        plan(project="p", pythons="3.11,2.7")
    with pytest.raises(InvalidRequestError, match='set containers = "docker"'):
        plan(project="p", containers="process", pythons="3.11,3.13")


@pytest.mark.parametrize(
    ("machine_type", "cpus", "ram_gb"),
    [
        ("n2-standard-4", 4, 16),
        ("e2-highcpu-8", 8, 8),
        ("n1-standard-2", 2, 7.5),
        ("c3-highcpu-22", 22, 44),
        ("n2-custom-6-20480", 6, 20),
        ("c2d-highcpu-16", 16, 32),
        ("c3d-highcpu-30", 30, 59),
        ("n2-highmem-128", 128, 864),
    ],
)
def test_machine_types_are_sized(machine_type: str, cpus: int, ram_gb: float) -> None:
    node_type = node_type_of(machine_type)
    assert (node_type.name, node_type.cpus, node_type.ram_gb) == (machine_type, cpus, ram_gb)


def test_store_and_blob_urls_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="firestore://PROJECT/NAMESPACE"):
        open_store("firestore://project-only")
    with pytest.raises(InvalidRequestError, match="unknown parameter 'color'"):
        open_blobs("gs://bucket/ns?color=blue", b"")
    with pytest.raises(InvalidRequestError, match="cannot sign URLs with"):
        open_blobs(f"gs://bucket/ns?signer={tmp_path / 'missing.json'}", b"")
    key = tmp_path / "key.json"
    write_service_account_key(key)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", LOCAL_ONLY["STORAGE_EMULATOR_HOST"])
        blobs = open_blobs(f"gs://bucket/ns?signer={key}", b"")
    assert blobs.bucket == "bucket"  # type: ignore[attr-defined]
