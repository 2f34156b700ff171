"""`burla plan`: what the scheduler would decide for a job, without doing it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from burla.cli.output import emit, json_option
from burla.core.kill_plan import plan_containers
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
from burla.core.protocols import ContainerInfo
from burla.core.scheduling import plan_job, slots_on

_GROUP = re.compile(r"^(\d+)x(\d+)$")
F = TypeVar("F", bound=Callable[..., Any])
_COUNT = click.IntRange(min=1)
_NONE_OR_MORE = click.IntRange(min=0)
_GB = click.FloatRange(min=0, min_open=True)


def _node_type(cpus: int, ram_per_cpu: float) -> NodeType:
    return NodeType(name=f"{cpus}-cpu", cpus=cpus, ram_gb=cpus * ram_per_cpu)


def _parse_groups(values: tuple[str, ...], ram_per_cpu: float) -> list[StandbyGroup]:
    groups = []
    for value in values:
        match = _GROUP.match(value.strip())
        if match is None or int(match[2]) < 1:
            raise click.BadParameter(
                f"{value!r} is not COUNTxCPUS, e.g. 5x96", param_hint="--standby"
            )
        groups.append(
            StandbyGroup(node_type=_node_type(int(match[2]), ram_per_cpu), count=int(match[1]))
        )
    return groups


def _number(*names: str, help: str, **settings: Any) -> Callable[[F], F]:
    """A numeric option, whose default --help shows when it has one."""
    shown = settings.get("default") is not None
    return click.option(*names, show_default=shown, help=help, **settings)


@click.command()
@click.option(
    "--standby",
    "standby",
    multiple=True,
    metavar="COUNTxCPUS",
    help="Idle nodes waiting for work, e.g. 5x96. Repeat for more node types.",
)
@_number(
    "--inputs",
    "n_inputs",
    type=_NONE_OR_MORE,
    required=True,
    help="Number of inputs in the job.",
)
@_number("--func-cpu", type=_COUNT, default=1, help="CPUs per input.")
@_number("--func-ram", type=_GB, default=4.0, help="GB of RAM per input.")
@_number("--func-gpu", type=_NONE_OR_MORE, default=0, help="GPUs per input.")
@_number("--max-parallelism", type=_COUNT, help="Run at most this many inputs at once.")
@_number(
    "--node-cpus",
    type=_COUNT,
    help="CPUs of the node type started on demand (default: the standby type).",
)
@_number("--ram-per-cpu", type=_GB, default=4.0, help="GB of RAM per CPU of every node type.")
@_number(
    "--images",
    type=_COUNT,
    default=1,
    help="Container specs kept warm on every node (one container per CPU each).",
)
@_number(
    "--max-nodes", type=click.IntRange(min=0), help="Cap on the number of nodes in the cluster."
)
@json_option
def plan(
    standby: tuple[str, ...],
    n_inputs: int,
    func_cpu: int,
    func_ram: float,
    func_gpu: int,
    max_parallelism: int | None,
    node_cpus: int | None,
    ram_per_cpu: float,
    images: int,
    max_nodes: int | None,
    as_json: bool,
) -> None:
    """Show what the cluster would do for a job, without doing it.

    The cluster is taken to be in standby: every standby node is up and idle.

    \b
    Example, the seed's: 5 idle 96-CPU nodes and 1,000 inputs:
      burla plan --standby 5x96 --inputs 1000
    """
    groups = _parse_groups(standby, ram_per_cpu)
    if node_cpus is None and not groups:
        raise click.UsageError("give --standby COUNTxCPUS, or --node-cpus for a cold cluster")
    specs = tuple(ContainerSpec(image=f"image-{i}") for i in range(images))
    extra = (_node_type(node_cpus, ram_per_cpu),) if node_cpus else ()
    config = ClusterConfig(
        standby=StandbyDefinition(nodes=tuple(groups), containers=specs),
        node_types=extra,
        max_nodes=max_nodes,
    )
    job = JobSpec(
        job_id="plan",
        n_inputs=n_inputs,
        func_cpu=func_cpu,
        func_ram=func_ram,
        func_gpu=func_gpu,
        max_parallelism=max_parallelism,
    )
    result = _decide(config, job)
    emit(result, as_json, lambda: _print_plan(result))


def _decide(config: ClusterConfig, job: JobSpec) -> dict[str, Any]:
    """What the scheduler decides for `job` on a cluster whose standby nodes are all up
    and idle, and what each new node does with its warm containers."""
    nodes = [
        Node(node_id=f"{g.node_type.name}-{i}", node_type=g.node_type, state=NodeState.READY)
        for g in config.standby.nodes
        for i in range(g.count)
    ]
    job_plan = plan_job(config, nodes, job)
    node_type = job_plan.node_type
    specs = config.standby.containers
    containers = [
        ContainerInfo(name=f"{spec.image}-{cpu}", image=spec.image, port=0, cpuset=frozenset({cpu}))
        for spec in specs
        for cpu in range(node_type.cpus)
    ]
    kill_plan = plan_containers(
        node_type.cpus,
        containers,
        image=specs[0].image,
        func_cpu=job.func_cpu,
        max_workers=slots_on(node_type, job),
    )
    return {
        "cpus_now": job_plan.cpus_now,
        "workers_now": job_plan.workers_now,
        "nodes_joining_now": len(job_plan.join_now),
        "new_nodes_for_job": job_plan.new_nodes_for_job,
        "nodes_to_start": job_plan.nodes_to_start,
        "starts": dict(job_plan.starts),
        "node_type": node_type.model_dump(),
        "containers_per_node": len(containers),
        "containers_kept_per_node": len(kill_plan.keep),
        "containers_killed_per_node": len(kill_plan.kill),
        "cpus_per_container": job.func_cpu,
    }


def _print_plan(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="burla plan", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("CPUs working now", result["cpus_now"]),
        ("inputs running now", result["workers_now"]),
        ("standby nodes joining now", result["nodes_joining_now"]),
        ("new nodes for this job", result["new_nodes_for_job"]),
        ("nodes to start (job + standby)", result["nodes_to_start"]),
        ("node type for new nodes", result["node_type"]["name"]),
        ("containers per node", result["containers_per_node"]),
        ("containers kept per node", result["containers_kept_per_node"]),
        ("containers killed per node", result["containers_killed_per_node"]),
        ("CPUs per kept container", result["cpus_per_container"]),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    Console().print(table)
