"""Images through a registry, as a cloud cluster's nodes get them: a Dockerfile's image is
built once and pushed; a node that lacks an image pulls it when it starts a container;
what cannot be had is an ImageError that quotes the registry. On a real dockerd and the
reference Distribution registry on loopback, standing in for Artifact Registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from burla.backends.docker.custom import DockerImages
from burla.backends.docker.image import has_image, registry_of
from burla.backends.docker.registry_login import TokenLogin
from burla.backends.docker.runtime import DockerRuntime
from burla.core.errors import ImageError
from burla.core.models import ContainerSpec
from burla.core.protocols import ContainerInfo
from tests.components.registry import Registry
from tests.contract.containers import FreePort
from tests.contract.eventually import eventually
from tests.fakes.compute_api import ACCESS_TOKEN

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


async def exit_code(runtime: DockerRuntime, name: str) -> int | None:
    """The container's exit code, once it has exited."""
    found: list[ContainerInfo] = []

    async def exited() -> bool:
        found[:] = [info for info in await runtime.list() if info.name == name]
        return bool(found) and not found[0].running

    await eventually(exited, timeout_s=60)
    return found[0].exit_code


def forget(client: Any, *images: str) -> None:
    """Remove images from this engine, as a node that never had them."""
    for image in images:
        if has_image(client, image):
            client.images.remove(image, force=True)


async def pushed_elsewhere(
    docker_engine: Any, default_image: str, registry: Registry, marker: str
) -> str:
    """A Dockerfile's image (one of its own each run: built, not found cached), built and
    pushed, then removed from this engine as from a node that never had it."""
    images = DockerImages(docker_engine, registry=registry.host)
    pushed = await images.build(f"FROM {default_image}\nRUN echo {marker} > /marker\n")
    local = pushed.removeprefix(f"{registry.host}/")
    await anyio.to_thread.run_sync(forget, docker_engine, pushed, local)
    return pushed


async def test_a_built_image_is_pushed_and_a_node_without_it_pulls_it(
    docker_engine: Any,
    default_image: str,
    registry: Registry,
    docker_runtime: DockerRuntime,
    free_port: FreePort,
    tmp_path: Path,
) -> None:
    marker = tmp_path.name
    pushed = await pushed_elsewhere(docker_engine, default_image, registry, marker)
    assert pushed.startswith(f"{registry.host}/burla-custom:")

    check = f"import sys; sys.exit(0 if open('/marker').read().strip() == {marker!r} else 3)"
    spec = ContainerSpec(image=pushed, entrypoint=("python", "-c", check))
    await docker_runtime.start(spec, name="w", port=free_port(), cpuset=frozenset({0}))
    assert await exit_code(docker_runtime, "w") == 0, await docker_runtime.logs("w")
    assert await anyio.to_thread.run_sync(has_image, docker_engine, pushed)


async def test_an_image_named_by_a_job_is_pulled_before_it_is_checked(
    docker_engine: Any, default_image: str, registry: Registry
) -> None:
    named = f"{registry.host}/team/tools:1"
    client = docker_engine
    await anyio.to_thread.run_sync(lambda: client.images.get(default_image).tag(named))
    await anyio.to_thread.run_sync(lambda: client.images.push(named))
    await anyio.to_thread.run_sync(forget, client, named)
    assert await DockerImages(client).check(named) == "3.11"


async def test_a_registry_that_asks_for_a_login_gets_the_access_token(
    docker_engine: Any,
    default_image: str,
    google_registry: Registry,
    docker_node_id: str,
    free_port: FreePort,
    tmp_path: Path,
) -> None:
    dockerfile = f"FROM {default_image}\nRUN echo {tmp_path.name} > /marker\n"
    with pytest.raises(ImageError, match=r"could not be pushed.*no basic auth credentials"):
        await DockerImages(docker_engine, registry=google_registry.host).build(dockerfile)
    login = TokenLogin(lambda: (ACCESS_TOKEN, 3599.0))
    images = DockerImages(docker_engine, registry=google_registry.host, login=login)
    pushed = await images.build(dockerfile)
    local = pushed.removeprefix(f"{google_registry.host}/")
    await anyio.to_thread.run_sync(forget, docker_engine, pushed, local)

    spec = ContainerSpec(image=pushed, entrypoint=("python", "-c", "pass"))
    without = DockerRuntime(docker_node_id, tmp_path / "without", client=docker_engine)
    with pytest.raises(ImageError, match=r"could not be pulled.*no basic auth credentials"):
        await without.start(spec, name="w", port=free_port(), cpuset=frozenset({0}))
    runtime = DockerRuntime(docker_node_id, tmp_path / "with", client=docker_engine, login=login)
    try:
        await runtime.start(spec, name="w", port=free_port(), cpuset=frozenset({0}))
        assert await exit_code(runtime, "w") == 0, await runtime.logs("w")
    finally:
        await runtime.aclose()


async def test_an_image_the_registry_lacks_is_an_image_error_quoting_it(
    docker_engine: Any,
    registry: Registry,
    docker_runtime: DockerRuntime,
    free_port: FreePort,
) -> None:
    missing = f"{registry.host}/no/such-image:1"
    with pytest.raises(ImageError, match=r"could not be pulled: .*(not found|unknown)"):
        await DockerImages(docker_engine).check(missing)
    spec = ContainerSpec(image=missing)
    with pytest.raises(ImageError, match="could not be pulled"):
        await docker_runtime.start(spec, name="w", port=free_port(), cpuset=frozenset({0}))
    assert await docker_runtime.list() == []


async def test_a_registry_that_does_not_answer_is_an_image_error(docker_engine: Any) -> None:
    from tests.components.redis import free_loopback_port

    gone = f"127.0.0.1:{free_loopback_port()}/burla-custom:abc"
    with pytest.raises(ImageError, match="could not be pulled"):
        await DockerImages(docker_engine).check(gone)


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("burla-default:abc", None),
        ("team/tools:1", None),  # Docker Hub's: never pulled by burla
        ("127.0.0.1:5000/tools:1", "127.0.0.1:5000"),
        ("us-central1-docker.pkg.dev/p/repo/tools:1", "us-central1-docker.pkg.dev"),
        ("localhost/tools", "localhost"),
    ],
)
def test_only_images_named_with_their_registry_are_pulled(image: str, registry: str | None) -> None:
    assert registry_of(image) == registry


async def test_forget_removes_a_built_image_from_the_engine_and_leaves_named_ones(
    docker_engine: Any, default_image: str, registry: Registry, tmp_path: Path
) -> None:
    dockerfile = f"FROM {default_image}\nRUN echo {tmp_path.name} > /marker\n"
    images = DockerImages(docker_engine, registry=registry.host)
    pushed = await images.build(dockerfile)
    local = pushed.removeprefix(f"{registry.host}/")
    assert await anyio.to_thread.run_sync(has_image, docker_engine, local)

    await images.forget(pushed)
    assert not await anyio.to_thread.run_sync(has_image, docker_engine, pushed)
    assert not await anyio.to_thread.run_sync(has_image, docker_engine, local)
    await images.forget(pushed)  # gone already: nothing to do

    await images.forget(default_image)  # named, not built here: left as it is
    assert await anyio.to_thread.run_sync(has_image, docker_engine, default_image)


async def test_a_node_frees_an_image_it_pulled_once_no_container_uses_it(
    docker_engine: Any,
    default_image: str,
    registry: Registry,
    docker_runtime: DockerRuntime,
    free_port: FreePort,
    tmp_path: Path,
) -> None:
    pushed = await pushed_elsewhere(docker_engine, default_image, registry, tmp_path.name)
    spec = ContainerSpec(image=pushed, entrypoint=("sleep", "60"))
    await docker_runtime.start(spec, name="w", port=free_port(), cpuset=frozenset({0}))
    assert await anyio.to_thread.run_sync(has_image, docker_engine, pushed)  # pulled

    await docker_runtime.free_image(pushed)  # a container uses it: it stays
    assert await anyio.to_thread.run_sync(has_image, docker_engine, pushed)
    await docker_runtime.stop("w")
    await docker_runtime.free_image(pushed)
    assert not await anyio.to_thread.run_sync(has_image, docker_engine, pushed)
    await docker_runtime.free_image(pushed)  # gone already: nothing to do

    await docker_runtime.free_image(default_image)  # not pulled by the node: it stays
    assert await anyio.to_thread.run_sync(has_image, docker_engine, default_image)
