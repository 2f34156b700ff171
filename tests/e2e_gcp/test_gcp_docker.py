"""A cloud cluster whose workers are Docker containers, as the seed keeps them: every node
runs one container per CPU of each standby image, pulled from the cluster's registry (a
real Distribution registry on loopback that, standing in for Artifact Registry, takes
only a Google access token) into an engine of the nodes' own. main_service builds and
pushes images; the nodes only pull.

The fake Compute API's VMs all use that one engine: a second VM finds an image the first
pulled already, which a real VM (an engine of its own) would pull again."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

import burla.client.map
from burla import ImageError, remote_parallel_map
from burla.backends.docker.image import default_image_tag
from burla.backends.docker.labels import IMAGE_LABEL, NAME_LABEL, NODE_LABEL
from burla.core.errors import InvalidRequestError
from burla.services.node_service.metadata_guard import WORKER_USER
from tests.components.docker import NodesEngine
from tests.components.registry import Registry
from tests.e2e_gcp.conftest import PROJECT, ZONE, GcpCluster
from tests.fakes.compute_api import ACCESS_TOKEN, FakeComputeApi

pytestmark = pytest.mark.integration

PYTHON_VERSION = "__import__('platform').python_version()"
"""What `eval` (pickled by reference, so it loads in any Python) gives a worker's version of."""


def container_name(_: int) -> str:
    import os

    return os.environ["BURLA_CONTAINER_NAME"]


def read_marker(_: int) -> tuple[str, str, str]:
    """The image's marker, and the name and Docker id of the container running this (Docker
    mounts /etc/hostname and others from its directory of the container's, named by id)."""
    import os
    import re

    with open("/proc/self/mountinfo") as mounts:
        [docker_id, *_] = re.findall(r"/containers/([0-9a-f]{64})/", mounts.read())
    with open("/etc/burla-marker") as marker:
        return marker.read().strip(), os.environ["BURLA_CONTAINER_NAME"], docker_id


def listed(engine: NodesEngine) -> list[tuple[str, dict[str, str]]]:
    """Docker id and labels of every running burla container on the nodes' engine, as
    one list call gives them (a container may go before another call could ask)."""
    found = engine.client.containers.list(sparse=True, filters={"label": NODE_LABEL})
    return [(container.id, container.attrs["Labels"]) for container in found]


def running(engine: NodesEngine) -> list[dict[str, str]]:
    """The labels of every running burla container on the nodes' engine."""
    return [labels for _, labels in listed(engine)]


def running_of(engine: NodesEngine, image: str) -> dict[str, str]:
    """Running containers of `image`: burla name -> Docker id."""
    return {
        labels[NAME_LABEL]: docker_id
        for docker_id, labels in listed(engine)
        if labels[IMAGE_LABEL] == image
    }


def wait_for_containers(engine: NodesEngine, images: set[str], per_image: int) -> None:
    """Until the standby node runs `per_image` containers of each of `images`, and no other."""
    deadline = time.monotonic() + 120
    while True:
        found = Counter(labels[IMAGE_LABEL] for labels in running(engine))
        if found == Counter({image: per_image for image in images}):
            return
        assert time.monotonic() < deadline, f"the standby node runs {dict(found)}"
        time.sleep(0.1)


def registry_tags(registry: Registry, repository: str) -> list[str]:
    """The tags the registry holds of `repository` (the Distribution API's tag list)."""
    url = f"http://{registry.host}/v2/{repository}/tags/list"
    login = registry.login
    auth = None if login is None else (login["username"], login["password"])
    answer = httpx.get(url, auth=auth, timeout=10, trust_env=False)
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    tags: list[str] = answer.json()["tags"] or []
    return tags


def standby_images(cluster: GcpCluster) -> list[str]:
    return [spec["image"] for spec in cluster.status()["standby"]["containers"]]


def test_every_node_runs_a_container_per_cpu_of_each_default_image_from_the_registry(
    gcp_docker: GcpCluster, nodes_docker_engine: NodesEngine, google_registry: Registry
) -> None:
    registry = google_registry.host
    defaults = {f"{registry}/{default_image_tag(python)}" for python in ("3.11", "3.13")}
    status = gcp_docker.wait_for_standby()
    cpus = status["nodes"][0]["cpus"]
    assert set(standby_images(gcp_docker)) == defaults
    wait_for_containers(nodes_docker_engine, defaults, per_image=cpus)
    for image in defaults:  # pushed by main_service, pulled by the node
        repository, tag = image.removeprefix(f"{google_registry.host}/").split(":")
        assert tag in registry_tags(google_registry, repository)
        assert nodes_docker_engine.client.images.get(image)

    names = remote_parallel_map(container_name, range(20), backend="gcp", spinner=False)
    ran_in = {labels[NAME_LABEL]: labels for labels in running(nodes_docker_engine)}
    assert set(names) <= set(ran_in)
    assert {ran_in[name][IMAGE_LABEL] for name in names} == {
        f"{google_registry.host}/{default_image_tag('3.11')}"  # the caller's Python's
    }


def test_callers_of_two_pythons_run_side_by_side_in_their_own_default_images(
    gcp_docker: GcpCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    [mine] = remote_parallel_map(eval, [PYTHON_VERSION], backend="gcp", spinner=False)
    assert mine.startswith("3.11.")
    monkeypatch.setattr(burla.client.map, "RUNNING_PYTHON", "3.13")
    [newer] = remote_parallel_map(eval, [PYTHON_VERSION], backend="gcp", spinner=False)
    assert newer.startswith("3.13.")
    monkeypatch.setattr(burla.client.map, "RUNNING_PYTHON", "3.12")
    with pytest.raises(InvalidRequestError, match=r"for Python 3\.12 \(it has Python 3\.11, 3\.13"):
        remote_parallel_map(eval, [PYTHON_VERSION], backend="gcp", spinner=False)


def test_a_dockerfile_is_built_pushed_and_pulled_once_and_its_next_job_starts_warm(
    gcp_docker: GcpCluster,
    nodes_docker_engine: NodesEngine,
    google_registry: Registry,
    default_image: str,
    tmp_path: Path,
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {default_image}\nRUN echo built-once > /etc/burla-marker\n")

    first = remote_parallel_map(
        read_marker, range(4), dockerfile=str(dockerfile), backend="gcp", spinner=False
    )
    assert [marker for marker, _, _ in first] == ["built-once"] * 4
    [image] = [i for i in standby_images(gcp_docker) if "/burla-custom:" in i]
    assert image.startswith(f"{google_registry.host}/burla-custom:")
    assert image.rsplit(":", 1)[1] in registry_tags(google_registry, "burla-custom")
    assert nodes_docker_engine.client.images.get(image)  # pulled by the nodes' engine

    status = gcp_docker.wait_for_standby()  # the job's node went; a new one waits
    warm = {}
    deadline = time.monotonic() + 120
    while len(warm) < status["nodes"][0]["cpus"]:
        assert time.monotonic() < deadline, "the new standby node has no warm containers"
        warm = running_of(nodes_docker_engine, image)
        time.sleep(0.1)
    second = remote_parallel_map(
        read_marker, range(4), dockerfile=str(dockerfile), backend="gcp", spinner=False
    )
    assert [marker for marker, _, _ in second] == ["built-once"] * 4
    for _, name, docker_id in second:  # in containers that were running before the job came
        assert docker_id == warm[name]


def test_a_build_context_travels_through_cloud_storage_to_the_build(
    gcp_docker: GcpCluster, default_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "greeting.txt").write_text("copied from the caller's directory\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {default_image}\nCOPY greeting.txt /etc/burla-marker\n")
    uploads: list[str] = []
    real_put = httpx.put

    def recording_put(url: str, **kwargs: Any) -> httpx.Response:
        uploads.append(url)
        return real_put(url, **kwargs)

    monkeypatch.setattr(httpx, "put", recording_put)
    [(marker, _, _)] = remote_parallel_map(
        read_marker,
        [0],
        dockerfile=str(dockerfile),
        build_context=str(context),
        backend="gcp",
        spinner=False,
    )
    assert marker == "copied from the caller's directory"
    [url] = uploads  # the context, signed for the storage emulator's bucket
    assert url.startswith(f"{gcp_docker.storage_url}/{gcp_docker.bucket}/")


def test_a_named_image_is_pulled_from_the_registry(
    gcp_docker: GcpCluster,
    nodes_docker_engine: NodesEngine,
    google_registry: Registry,
    docker_engine: Any,
    default_image: str,
) -> None:
    named = f"{google_registry.host}/team/tools:1"
    docker_engine.images.get(default_image).tag(named)
    pushed = docker_engine.images.push(named, auth_config=google_registry.login)
    assert "errorDetail" not in pushed, pushed
    docker_engine.images.remove(named)  # main_service pulls it back to check it

    names = remote_parallel_map(container_name, range(3), image=named, backend="gcp", spinner=False)
    assert set(names) <= set(running_of(nodes_docker_engine, named))
    assert named in standby_images(gcp_docker)


def test_an_image_the_registry_lacks_or_a_broken_dockerfile_is_a_clear_error(
    gcp_docker: GcpCluster, google_registry: Registry, default_image: str, tmp_path: Path
) -> None:
    absent = f"{google_registry.host}/team/absent:1"
    with pytest.raises(ImageError, match=f"'{absent}' could not be pulled"):
        remote_parallel_map(abs, [1], image=absent, backend="gcp", spinner=False)
    broken = tmp_path / "Dockerfile"
    broken.write_text(f"FROM {default_image}\nRUN echo no-such-step && exit 3\n")
    with pytest.raises(ImageError, match=r"(?s)could not be built.*no-such-step"):
        remote_parallel_map(abs, [1], dockerfile=str(broken), backend="gcp", spinner=False)
    assert absent not in standby_images(gcp_docker)


def test_the_standby_definition_and_a_jobs_lines_survive_a_restart(
    gcp_docker: GcpCluster, default_image: str, tmp_path: Path
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {default_image}\nRUN echo kept > /etc/burla-marker\n")

    def talk(x: int) -> int:
        print(f"line {x}")
        return x

    remote_parallel_map(read_marker, [0], dockerfile=str(dockerfile), backend="gcp", spinner=False)
    job_id = remote_parallel_map(talk, range(5), backend="gcp", spinner=False, detach=True)
    deadline = time.monotonic() + 60
    while gcp_docker.get(f"/jobs/{job_id}")["state"] != "succeeded":
        assert time.monotonic() < deadline, "the detached job did not finish"
        time.sleep(0.05)
    before = standby_images(gcp_docker)

    gcp_docker.stop()
    gcp_docker.start()

    assert standby_images(gcp_docker) == before
    lines = gcp_docker.get(f"/jobs/{job_id}/logs")["lines"]
    assert sorted(line["text"].strip() for line in lines) == [f"line {x}" for x in range(5)]
    gcp_docker.wait_for_standby()
    [marker] = remote_parallel_map(
        read_marker, [0], dockerfile=str(dockerfile), backend="gcp", spinner=False
    )
    assert marker[0] == "kept"


def read_metadata(url: str) -> tuple[int, str]:
    """The worker's uid, and what the metadata server at `url` gave it (or why not)."""
    import os
    import urllib.request

    request = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return os.getuid(), str(answer.read().decode())
    except OSError as error:
        return os.getuid(), f"{type(error).__name__}: {error}"


def test_a_worker_cannot_read_the_vms_credentials(
    gcp_docker: GcpCluster, compute_api: FakeComputeApi
) -> None:
    status = gcp_docker.wait_for_standby()
    vm = f"{gcp_docker.cluster}-{status['nodes'][0]['node_id']}"
    url = (
        f"http://127.0.0.1:{compute_api.port}/vms/{PROJECT}/{ZONE}/{vm}"
        "/computeMetadata/v1/instance/service-accounts/default/token"
    )
    # Root on the VM, as node_service is, reads the token...
    answer = httpx.get(url, headers={"Metadata-Flavor": "Google"}, timeout=10, trust_env=False)
    assert answer.json()["access_token"] == ACCESS_TOKEN
    # ...the node's workers, each its own user, cannot.
    [(uid, said)] = remote_parallel_map(read_metadata, [url], backend="gcp", spinner=False)
    assert uid == WORKER_USER[0]
    assert ACCESS_TOKEN not in said
    assert "Connection refused" in said


def test_a_package_the_images_lack_is_installed_for_each_callers_python(
    gcp_docker: GcpCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iniconfig import IniConfig  # installed here, in neither default image

    ini = ("job.ini", "[section]\nkey = 1\n")  # IniConfig(path, data)
    for python in ("3.11", "3.13"):
        monkeypatch.setattr(burla.client.map, "RUNNING_PYTHON", python)
        # The class goes by reference: its package must be installed for that Python.
        [parsed] = remote_parallel_map(IniConfig, [ini], backend="gcp", spinner=False)
        assert parsed["section"]["key"] == "1"
