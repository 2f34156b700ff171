"""Container kill plans: keep floor(CPUs / func_cpu) of the job's image, kill the rest."""

import pytest

from burla.core.errors import InvalidRequestError
from burla.core.kill_plan import plan_containers
from burla.core.protocols import ContainerInfo


def standby_containers(cpus: int, images: tuple[str, ...]) -> list[ContainerInfo]:
    return [
        ContainerInfo(name=f"{image}-{cpu}", image=image, port=9000 + n, cpuset=frozenset({cpu}))
        for n, (image, cpu) in enumerate((i, c) for i in images for c in range(cpus))
    ]


def test_seed_example_96_cpus_func_cpu_32_keeps_3():
    containers = standby_containers(96, ("py311", "py312"))
    plan = plan_containers(96, containers, image="py311", func_cpu=32)
    assert [k.container.name for k in plan.keep] == ["py311-0", "py311-1", "py311-2"]
    assert [k.cpuset for k in plan.keep] == [
        frozenset(range(0, 32)),
        frozenset(range(32, 64)),
        frozenset(range(64, 96)),
    ]
    assert len(plan.kill) == 96 * 2 - 3
    assert all(
        c.image == "py312" or c.name not in {"py311-0", "py311-1", "py311-2"} for c in plan.kill
    )


def test_func_cpu_1_keeps_every_container_of_the_image():
    containers = standby_containers(4, ("a", "b"))
    plan = plan_containers(4, containers, image="b", func_cpu=1)
    assert [k.container.name for k in plan.keep] == ["b-0", "b-1", "b-2", "b-3"]
    assert [c.name for c in plan.kill] == ["a-0", "a-1", "a-2", "a-3"]


def test_leftover_cpus_are_not_handed_out():
    plan = plan_containers(10, standby_containers(10, ("a",)), image="a", func_cpu=3)
    assert len(plan.keep) == 3
    assert set().union(*(k.cpuset for k in plan.keep)) == set(range(9))


def test_max_workers_caps_the_containers_kept():
    plan = plan_containers(
        96, standby_containers(96, ("a",)), image="a", func_cpu=1, max_workers=24
    )
    assert len(plan.keep) == 24
    assert len(plan.kill) == 72


def test_exited_containers_are_not_kept():
    containers = standby_containers(2, ("a",))
    containers[0] = ContainerInfo(
        name="a-0", image="a", port=9000, cpuset=frozenset({0}), running=False, exit_code=137
    )
    plan = plan_containers(2, containers, image="a", func_cpu=1)
    assert [k.container.name for k in plan.keep] == ["a-1"]
    assert [k.cpuset for k in plan.keep] == [frozenset({0})]
    assert [c.name for c in plan.kill] == ["a-0"]


def test_func_cpu_larger_than_the_node_is_refused():
    with pytest.raises(InvalidRequestError, match="more CPUs than this node's 4"):
        plan_containers(4, standby_containers(4, ("a",)), image="a", func_cpu=8)


def test_missing_image_is_refused():
    with pytest.raises(InvalidRequestError, match="no container of image 'b'"):
        plan_containers(4, standby_containers(4, ("a",)), image="b", func_cpu=1)
