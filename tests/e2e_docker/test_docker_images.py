"""Custom images on a Docker-backed cluster: a Dockerfile is built once, joins the standby
definition and runs on every node, so the second job on it starts on warm containers; a
named image runs as it is. These tests change the standby definition, so they have a
cluster of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from burla import ImageError, remote_parallel_map
from burla.backends.local.store import SqliteStore
from burla.core.clock import WallClock
from burla.core.models import StandbyDefinition
from burla.services.store_keys import STANDBY_KEY
from tests.e2e_docker.conftest import DockerCluster, running_cluster

pytestmark = pytest.mark.integration

NAMED_IMAGE = "burla-test-named:1"


@pytest.fixture(scope="module")
def image_cluster(
    docker_engine: Any, default_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerCluster]:
    with running_cluster(
        tmp_path_factory.mktemp("burla-images"), docker_engine, default_image
    ) as c:
        yield c


def read_marker(_: int) -> tuple[str, str]:
    import os

    with open("/etc/burla-marker") as marker:
        return marker.read().strip(), os.environ["BURLA_CONTAINER_NAME"]


def standby_images(root: Path) -> set[str]:
    async def read() -> set[str]:
        store = SqliteStore(root / "store.db", WallClock())
        try:
            doc = await store.get(STANDBY_KEY)
        finally:
            store.close()
        assert doc is not None
        return set(StandbyDefinition.model_validate(doc.data).images)

    return anyio.run(read)


def running_of(cluster: DockerCluster, image: str) -> dict[str, str]:
    """The cluster's running containers of `image`: burla name -> Docker id."""
    return {
        c.labels["burla.name"]: c.id
        for c in cluster.containers()
        if c.labels["burla.image"] == image
    }


def test_a_dockerfile_is_built_once_and_its_second_job_starts_warm(
    image_cluster: DockerCluster, tmp_path: Path
) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        f"FROM {image_cluster.image}\nRUN echo from-my-dockerfile > /etc/burla-marker\n"
    )

    first = remote_parallel_map(
        read_marker, range(2), dockerfile=str(dockerfile), backend="docker", spinner=False
    )
    assert [marker for marker, _ in first] == ["from-my-dockerfile"] * 2
    (tag,) = standby_images(image_cluster.root) - {image_cluster.image}
    warm = running_of(image_cluster, tag)
    assert warm, "the new image's containers keep running on the node after its job"

    second = remote_parallel_map(
        read_marker, range(2), dockerfile=str(dockerfile), backend="docker", spinner=False
    )
    assert [marker for marker, _ in second] == ["from-my-dockerfile"] * 2
    after = running_of(image_cluster, tag)
    for _, name in second:  # ran in containers that were running before the job came
        assert after[name] == warm[name]


def test_copy_reads_the_build_context_and_a_changed_file_makes_a_new_image(
    image_cluster: DockerCluster, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "greeting.txt").write_text("from the context\n")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {image_cluster.image}\nCOPY greeting.txt /etc/burla-marker\n")

    def markers() -> list[str]:
        found = remote_parallel_map(
            read_marker,
            range(2),
            dockerfile=str(dockerfile),
            build_context=str(context),
            backend="docker",
            spinner=False,
        )
        return [marker for marker, _ in found]

    assert markers() == ["from the context"] * 2
    images = standby_images(image_cluster.root)
    (context / "greeting.txt").write_text("changed\n")
    assert markers() == ["changed"] * 2
    assert len(standby_images(image_cluster.root) - images) == 1  # a new image


def test_a_named_image_runs_as_it_is(image_cluster: DockerCluster) -> None:
    image_cluster.engine.images.get(image_cluster.image).tag(NAMED_IMAGE)
    try:

        def image_name(_: int) -> str:
            import os

            return os.environ["BURLA_CONTAINER_NAME"]

        names = remote_parallel_map(
            image_name, range(2), image=NAMED_IMAGE, backend="docker", spinner=False
        )
        assert set(names) <= set(running_of(image_cluster, NAMED_IMAGE))
        assert NAMED_IMAGE in standby_images(image_cluster.root)
    finally:
        image_cluster.engine.images.remove(NAMED_IMAGE, noprune=True)


def test_an_image_the_engine_lacks_or_a_broken_dockerfile_is_a_clear_error(
    image_cluster: DockerCluster, tmp_path: Path
) -> None:
    with pytest.raises(ImageError, match="has no image 'burla-test-absent:1'"):
        remote_parallel_map(abs, [1], image="burla-test-absent:1", backend="docker", spinner=False)
    broken = tmp_path / "Dockerfile"
    broken.write_text(f"FROM {image_cluster.image}\nRUN exit 3\n")
    with pytest.raises(ImageError, match="could not be built"):
        remote_parallel_map(abs, [1], dockerfile=str(broken), backend="docker", spinner=False)
