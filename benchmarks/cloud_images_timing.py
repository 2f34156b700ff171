"""The timed run of benchmarks.cloud_images (see there), as a pytest test for its fixtures."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from burla import remote_parallel_map
from burla.backends.docker.custom import DockerImages, dockerfile_tag
from burla.backends.docker.image import push_image
from burla.backends.docker.labels import IMAGE_LABEL, NODE_LABEL
from burla.backends.docker.registry_login import TokenLogin
from tests.components.docker import NodesEngine
from tests.components.registry import Registry
from tests.e2e_gcp.conftest import GcpCluster
from tests.fakes.compute_api import ACCESS_TOKEN

INPUTS = 8


def marker(_: int) -> str:
    with open("/etc/burla-marker") as file:
        return file.read().strip()


def timed_job(dockerfile: Path) -> float:
    started = time.perf_counter()
    found = remote_parallel_map(
        marker, range(INPUTS), dockerfile=str(dockerfile), backend="gcp", spinner=False
    )
    elapsed = time.perf_counter() - started
    assert found == [dockerfile.parent.name] * INPUTS, found
    return elapsed


def test_time_cloud_images(
    gcp_docker: GcpCluster,
    nodes_docker_engine: NodesEngine,
    google_registry: Registry,
    docker_engine: Any,
    default_image: str,
    tmp_path_factory: Any,
) -> None:
    status = gcp_docker.wait_for_standby()
    cpus = status["nodes"][0]["cpus"]
    deadline = time.monotonic() + 120
    while True:
        running = nodes_docker_engine.client.containers.list(
            sparse=True, filters={"label": NODE_LABEL}
        )
        per_image = Counter(c.attrs["Labels"][IMAGE_LABEL] for c in running)
        if len(per_image) == 2 and set(per_image.values()) == {cpus}:
            break
        assert time.monotonic() < deadline, per_image
        time.sleep(0.1)
    started = time.perf_counter()
    remote_parallel_map(abs, range(INPUTS), backend="gcp", spinner=False)
    default_job_s = time.perf_counter() - started

    # Build and push a Dockerfile of its own, as main_service does for a job's.
    login = TokenLogin(lambda: (ACCESS_TOKEN, 3599.0))
    alone = f"FROM {default_image}\nRUN echo {secrets.token_hex(4)} > /etc/burla-marker\n"
    started = time.perf_counter()
    anyio.run(DockerImages(docker_engine).build, alone)
    build_s = time.perf_counter() - started
    tag = dockerfile_tag(alone)
    started = time.perf_counter()
    push_image(docker_engine, tag, f"{google_registry.host}/{tag}", login)
    push_s = time.perf_counter() - started

    # A job on a new Dockerfile, then the job after it.
    directory = tmp_path_factory.mktemp(f"m{secrets.token_hex(4)}")
    dockerfile = directory / "Dockerfile"
    dockerfile.write_text(f"FROM {default_image}\nRUN echo {directory.name} > /etc/burla-marker\n")
    first_job_s = timed_job(dockerfile)
    gcp_docker.wait_for_standby()  # the job's node went; its replacement starts warm
    time.sleep(5)  # and its containers of the new image
    second_job_s = timed_job(dockerfile)

    numbers = {
        "node_cpus": cpus,
        "standby_images": len(per_image),
        "containers_per_node_at_standby": sum(per_image.values()),
        "inputs_per_job": INPUTS,
        "default_image_job_s": round(default_job_s, 3),
        "dockerfile_build_s": round(build_s, 3),
        "dockerfile_push_s": round(push_s, 3),
        "first_job_on_new_dockerfile_s": round(first_job_s, 3),
        "second_job_on_it_s": round(second_job_s, 3),
    }
    out = Path(os.environ.get("BURLA_BENCH_OUT", "benchmarks/results/cloud_images.json"))
    out.write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers))
