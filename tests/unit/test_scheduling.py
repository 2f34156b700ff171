"""Standby math and node assignment, starting with the seed's own example."""

import pytest

from burla.core.errors import InvalidRequestError, ResourceRequestError
from burla.core.models import (
    ClusterConfig,
    ContainerSpec,
    JobSpec,
    Node,
    NodeState,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.core.scheduling import nodes_to_start, plan_job, slots_on

N96 = NodeType(name="n2-standard-96", cpus=96, ram_gb=384)
GPU = NodeType(name="a2-highgpu-1g", cpus=12, ram_gb=85, gpus=1)


def standby(*groups: tuple[NodeType, int], images: tuple[str, ...] = ("py311",)) -> ClusterConfig:
    return ClusterConfig(
        standby=StandbyDefinition(
            nodes=tuple(StandbyGroup(node_type=t, count=c) for t, c in groups),
            containers=tuple(ContainerSpec(image=i) for i in images),
        )
    )


def ready(node_type: NodeType, count: int, prefix: str = "n") -> list[Node]:
    return [
        Node(node_id=f"{prefix}{i}", node_type=node_type, state=NodeState.READY)
        for i in range(count)
    ]


def test_seed_example():
    plan = plan_job(standby((N96, 5)), ready(N96, 5), JobSpec(job_id="j", n_inputs=1000))
    assert plan.cpus_now == 480
    assert plan.join_now == ("n0", "n1", "n2", "n3", "n4")
    assert plan.new_nodes_for_job == 6
    assert plan.nodes_to_start == 11
    assert plan.starts == {"n2-standard-96": 11}


def test_no_standby_starts_everything_cold():
    config = ClusterConfig(node_types=(N96,))
    plan = plan_job(config, [], JobSpec(job_id="j", n_inputs=1000))
    assert plan.cpus_now == 0
    assert plan.join_now == ()
    assert plan.new_nodes_for_job == 11
    assert plan.nodes_to_start == 11


def test_small_job_takes_only_the_nodes_it_needs():
    plan = plan_job(standby((N96, 5)), ready(N96, 5), JobSpec(job_id="j", n_inputs=100))
    assert plan.join_now == ("n0", "n1")
    assert plan.cpus_now == 100
    assert plan.new_nodes_for_job == 0
    assert plan.nodes_to_start == 2  # only the standby replacements


def test_max_parallelism_limits_nodes():
    job = JobSpec(job_id="j", n_inputs=1000, max_parallelism=96)
    plan = plan_job(standby((N96, 5)), ready(N96, 5), job)
    assert plan.join_now == ("n0",)
    assert plan.cpus_now == 96
    assert plan.new_nodes_for_job == 0
    assert plan.nodes_to_start == 1


def test_func_cpu_makes_fewer_bigger_workers():
    job = JobSpec(job_id="j", n_inputs=30, func_cpu=32)
    plan = plan_job(standby((N96, 5)), ready(N96, 5), job)
    assert plan.workers_now == 15
    assert plan.cpus_now == 480
    assert plan.new_nodes_for_job == 5  # 15 more inputs, 3 per node
    assert plan.nodes_to_start == 10


def test_func_ram_limits_workers_per_node():
    job = JobSpec(job_id="j", n_inputs=1000, func_ram=16)
    assert slots_on(N96, job) == 24
    plan = plan_job(standby((N96, 1)), ready(N96, 1), job)
    assert plan.workers_now == 24
    assert plan.new_nodes_for_job == 41  # ceil(976 / 24)


def test_gpu_job_goes_to_the_gpu_type():
    config = ClusterConfig(
        standby=StandbyDefinition(nodes=(StandbyGroup(node_type=N96, count=2),)),
        node_types=(GPU,),
    )
    job = JobSpec(job_id="j", n_inputs=4, func_gpu=1)
    plan = plan_job(config, ready(N96, 2), job)
    assert plan.node_type == GPU
    assert plan.join_now == ()
    assert plan.new_nodes_for_job == 4
    assert plan.starts == {"a2-highgpu-1g": 4}


@pytest.mark.parametrize(
    ("field", "value"), [("func_cpu", 97), ("func_ram", 500.0), ("func_gpu", 2)]
)
def test_impossible_request_names_the_largest_node_type(field, value):
    config = ClusterConfig(standby=standby((N96, 1)).standby, node_types=(GPU,))
    job = JobSpec.model_validate({"job_id": "j", "n_inputs": 1, field: value})
    with pytest.raises(ResourceRequestError, match=r"largest is n2-standard-96 \(96 CPUs"):
        plan_job(config, [], job)


def test_unknown_image_is_refused_with_a_hint():
    job = JobSpec(job_id="j", n_inputs=1, image="ghcr.io/me/custom")
    with pytest.raises(InvalidRequestError, match="not in the standby definition"):
        plan_job(standby((N96, 1)), ready(N96, 1), job)


def test_a_cluster_without_node_types_says_so():
    with pytest.raises(InvalidRequestError, match="no node types"):
        plan_job(ClusterConfig(), [], JobSpec(job_id="j", n_inputs=1))


def test_busy_nodes_do_not_join_and_other_jobs_wants_are_counted():
    busy = [
        Node(node_id=f"b{i}", node_type=N96, state=NodeState.BUSY, job_id="other") for i in range(5)
    ]
    booting = [Node(node_id=f"s{i}", node_type=N96, state=NodeState.BOOTING) for i in range(11)]
    plan = plan_job(
        standby((N96, 5)), busy + booting, JobSpec(job_id="j", n_inputs=1000), {N96.name: 6}
    )
    assert plan.join_now == ()
    assert plan.new_nodes_for_job == 11
    # 6 (other job) + 11 (this job) + 5 (standby) wanted, 11 already booting.
    assert plan.nodes_to_start == 11


def test_cap_on_cluster_size_serves_jobs_before_standby():
    config = ClusterConfig(standby=standby((N96, 5)).standby, max_nodes=8)
    plan = plan_job(config, ready(N96, 5), JobSpec(job_id="j", n_inputs=1000))
    assert plan.new_nodes_for_job == 6
    assert plan.nodes_to_start == 3
    assert nodes_to_start(config, ready(N96, 8), {N96.name: 6}) == {}


def test_nodes_to_start_keeps_each_standby_group_whole():
    small = NodeType(name="n2-standard-4", cpus=4, ram_gb=16)
    config = standby((N96, 2), (small, 3))
    assert nodes_to_start(config, ready(N96, 1) + ready(small, 3, "s"), {}) == {N96.name: 1}
    assert nodes_to_start(config, [], {}) == {N96.name: 2, small.name: 3}


def test_max_nodes_per_job_keeps_a_job_on_that_many_nodes():
    config = standby((N96, 5)).model_copy(update={"max_nodes_per_job": 2})
    plan = plan_job(config, ready(N96, 5), JobSpec(job_id="j", n_inputs=1000))
    assert plan.join_now == ("n0", "n1")
    assert plan.new_nodes_for_job == 0
    cold = plan_job(config, [], JobSpec(job_id="k", n_inputs=1000))
    assert cold.new_nodes_for_job == 2
