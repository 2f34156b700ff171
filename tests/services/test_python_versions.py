"""One default image per Python version: a job runs in the one of its caller's Python."""

from __future__ import annotations

import anyio
import pytest
from pydantic import ValidationError

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core.clock import WallClock
from burla.core.errors import InvalidRequestError
from burla.core.models import (
    ClusterConfig,
    ContainerSpec,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.services.main_service.service import MainService
from burla.services.store_keys import INLINE

pytestmark = pytest.mark.anyio

N2 = NodeType(name="n2", cpus=2, ram_gb=8)
BOOKWORM = ContainerSpec(image="workers:bookworm", python_version="3.11", default=True)
TRIXIE = ContainerSpec(image="workers:trixie", python_version="3.13", default=True)
TOOLS = ContainerSpec(image="tools:1", python_version="3.12")  # a job's, not a default


def service(*containers: ContainerSpec) -> MainService:
    clock = WallClock()
    standby = StandbyDefinition(nodes=(StandbyGroup(node_type=N2, count=0),), containers=containers)
    return MainService(
        config=ClusterConfig(node_types=(N2,), standby=standby),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )


async def image_of_job(main: MainService, python: str | None, image: str | None = None) -> str:
    """The image the job of a caller of `python` (naming `image`) is given."""
    spec = {"n_inputs": 1, "python_version": python, "image": image}
    outcome: list[str | InvalidRequestError] = []
    async with anyio.create_task_group() as tasks:
        await main.run(tasks)
        try:
            outcome.append(await main.submit(spec, b"f", None, [("0", INLINE + b"x")]))
        except InvalidRequestError as refused:
            outcome.append(refused)
        tasks.cancel_scope.cancel()
    [job_id] = outcome
    if isinstance(job_id, InvalidRequestError):
        raise job_id
    chosen = main.jobs[job_id].spec.image
    assert chosen is not None
    return chosen


@pytest.mark.parametrize(("python", "image"), [("3.11", BOOKWORM.image), ("3.13", TRIXIE.image)])
async def test_a_job_runs_in_the_default_image_of_its_callers_python(
    python: str, image: str
) -> None:
    assert await image_of_job(service(BOOKWORM, TOOLS, TRIXIE), python) == image


async def test_a_python_the_cluster_keeps_no_default_for_is_a_clear_error() -> None:
    main = service(BOOKWORM, TOOLS, TRIXIE)
    with pytest.raises(
        InvalidRequestError, match=r"no default image for Python 3\.12 .*3\.11, 3\.13"
    ):
        await image_of_job(main, "3.12")
    assert main.jobs == {}, "a refused job left nothing behind"


async def test_a_job_that_names_its_image_runs_there() -> None:
    assert await image_of_job(service(BOOKWORM, TOOLS, TRIXIE), "3.12", "tools:1") == "tools:1"


async def test_a_definition_that_marks_no_default_has_its_first_image_as_one() -> None:
    first = ContainerSpec(image="workers:old", python_version="3.11")
    assert await image_of_job(service(first, TOOLS), "3.11") == "workers:old"
    assert StandbyDefinition(containers=(first, TOOLS)).defaults == {"3.11": "workers:old"}


def test_a_python_version_has_one_default_at_most() -> None:
    other = ContainerSpec(image="workers:other", python_version="3.11", default=True)
    with pytest.raises(ValidationError, match="one default image"):
        StandbyDefinition(containers=(BOOKWORM, other))
