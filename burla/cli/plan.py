"""`burla plan`: what the scheduler would decide for a job, without doing it, and what the
job would cost."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from burla.cli.output import emit, json_option
from burla.core.cost import CostEstimate, NodePrice, check_budget, estimate, price_of, usd_text
from burla.core.errors import InvalidRequestError
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

_GROUP = re.compile(r"^(\d+)x(\d+|[a-z][a-z0-9-]*)$")
F = TypeVar("F", bound=Callable[..., Any])
_COUNT = click.IntRange(min=1)
_NONE_OR_MORE = click.IntRange(min=0)
_GB = click.FloatRange(min=0, min_open=True)


def _node_type(cpus: int, ram_per_cpu: float) -> NodeType:
    return NodeType(name=f"{cpus}-cpu", cpus=cpus, ram_gb=cpus * ram_per_cpu)


def _named_type(name: str, ram_per_cpu: float, param: str) -> NodeType:
    """A node type of so many CPUs ("96"), or a Compute Engine machine type's."""
    if name.isdigit():
        return _node_type(int(name), ram_per_cpu)
    from burla.backends.gcp.machine_types import node_type_of

    try:
        return node_type_of(name)
    except InvalidRequestError as error:
        raise click.BadParameter(str(error), param_hint=param) from None


def _parse_groups(values: tuple[str, ...], ram_per_cpu: float) -> list[StandbyGroup]:
    groups = []
    for value in values:
        match = _GROUP.match(value.strip())
        if match is None or match[2] == "0" * len(match[2]):
            raise click.BadParameter(
                f"{value!r} is not COUNTxCPUS or COUNTxMACHINE_TYPE, e.g. 5x96 or 5xn2-standard-96",
                param_hint="--standby",
            )
        node_type = _named_type(match[2], ram_per_cpu, "--standby")
        groups.append(StandbyGroup(node_type=node_type, count=int(match[1])))
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
    metavar="COUNTxTYPE",
    help="Idle nodes waiting for work: so many of so many CPUs (5x96) or of a Compute "
    "Engine machine type (5xn2-standard-96). Repeat for more node types.",
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
@click.option(
    "--machine-type",
    help="The node type started on demand, a Compute Engine machine type (e.g. n2-standard-96).",
)
@_number(
    "--ram-per-cpu", type=_GB, default=4.0, help="GB of RAM per CPU of node types given by CPUs."
)
@_number(
    "--images",
    type=_COUNT,
    default=1,
    help="Container specs kept warm on every node (one container per CPU each).",
)
@_number(
    "--max-nodes", type=click.IntRange(min=0), help="Cap on the number of nodes in the cluster."
)
@_number(
    "--seconds-per-input",
    type=_GB,
    help="How long one input runs, your estimate: gives the job's node-hours and cost.",
)
@click.option(
    "--region",
    help="Where machine types are priced (default: the region of your settings' [gcp] zone).",
)
@click.option("--spot", is_flag=True, help="Price machine types as spot VMs.")
@_number(
    "--price-per-hour",
    type=click.FloatRange(min=0),
    help="USD per hour of one node, of any type, in place of list prices.",
)
@_number(
    "--max-cost",
    type=_GB,
    help="USD: say whether remote_parallel_map(max_cost=...) would refuse the job.",
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
    machine_type: str | None,
    ram_per_cpu: float,
    images: int,
    max_nodes: int | None,
    seconds_per_input: float | None,
    region: str | None,
    spot: bool,
    price_per_hour: float | None,
    max_cost: float | None,
    as_json: bool,
) -> None:
    """Show what the cluster would do for a job, without doing it, and with
    --seconds-per-input what the job would cost.

    The cluster is taken to be in standby: every standby node is up and idle. The cost
    is an estimate: the node-hours of the job's nodes while its inputs run in waves, at
    Compute Engine list prices of the date burla's price table was read (or at
    --price-per-hour); booting, idle standby nodes, disks and network are not counted.

    \b
    Example, the seed's: 5 idle 96-CPU nodes and 1,000 inputs:
      burla plan --standby 5x96 --inputs 1000
    Example, what 1,000 inputs of a minute each cost on n2-standard-96 VMs:
      burla plan --standby 5xn2-standard-96 --inputs 1000 --seconds-per-input 60
    """
    groups = _parse_groups(standby, ram_per_cpu)
    if node_cpus is None and machine_type is None and not groups:
        raise click.UsageError(
            "give --standby COUNTxTYPE, or --node-cpus or --machine-type for a cold cluster"
        )
    if node_cpus is not None and machine_type is not None:
        raise click.UsageError("give --node-cpus or --machine-type, not both")
    specs = tuple(ContainerSpec(image=f"image-{i}") for i in range(images))
    extra: tuple[NodeType, ...] = ()
    if node_cpus:
        extra = (_node_type(node_cpus, ram_per_cpu),)
    elif machine_type is not None:
        extra = (_named_type(machine_type, ram_per_cpu, "--machine-type"),)
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
        max_cost=max_cost,
        seconds_per_input=seconds_per_input,
    )
    result = _decide(config, job)
    node_type = NodeType.model_validate(result["node_type"])
    price = _price(node_type, region, spot, price_per_hour)
    found = None
    if seconds_per_input is not None:
        nodes = result["nodes_joining_now"] + result["new_nodes_for_job"]
        found = estimate(job, node_type, nodes, seconds_per_input, price)
    result["cost"] = _cost_fields(found, price)
    result["max_cost"] = _budget_fields(job, node_type, price)
    emit(result, as_json, lambda: _print_plan(result))


def _price(node_type: NodeType, region: str | None, spot: bool, usd: float | None) -> NodePrice:
    """One node's price: --price-per-hour, or the list price of its machine type."""
    if usd is not None:
        return NodePrice(usd, "--price-per-hour")
    if node_type.name == _node_type(node_type.cpus, 1).name:  # "96-cpu": no machine type
        return NodePrice(
            None,
            f"{node_type.name} is no Compute Engine machine type: name one (5xn2-standard-96, "
            "--machine-type) or give --price-per-hour",
        )
    from burla.backends.gcp.prices import list_price_in
    from burla.core.settings import load_settings

    where = region or load_settings().gcp.region
    if spot:
        node_type = node_type.model_copy(update={"spot": True})
    return price_of(node_type, list_price_in(where))


def _cost_fields(found: CostEstimate | None, price: NodePrice) -> dict[str, Any]:
    fields: dict[str, Any] = {"usd_per_node_hour": price.usd_per_hour, "price": price.source}
    if found is None:
        return {**fields, "estimate": None}
    return {
        **fields,
        "estimate": {
            "nodes": found.nodes,
            "inputs_per_node": found.per_node,
            "hours": found.seconds / 3600,
            "node_hours": found.node_seconds / 3600,
            "usd": found.usd,
            "least_node_hours": found.least_node_seconds / 3600,
            "least_usd": found.least_usd,
        },
    }


def _budget_fields(job: JobSpec, node_type: NodeType, price: NodePrice) -> dict[str, Any] | None:
    """What main_service would say of the job's max_cost: refused (and why) or not."""
    if job.max_cost is None:
        return None
    try:
        check_budget(job, node_type, price)
    except InvalidRequestError as error:
        return {"usd": job.max_cost, "refused": True, "why": str(error)}
    return {"usd": job.max_cost, "refused": False, "why": None}


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


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


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
    estimated = result["cost"]["estimate"]
    if estimated is not None:
        usd, least = estimated["usd"], estimated["least_usd"]
        rows += [
            (
                "node-hours (estimate)",
                f"{estimated['node_hours']:,.2f} ({estimated['nodes']} nodes x "
                f"{_duration(estimated['hours'] * 3600)})",
            ),
            ("cost (estimate)", usd_text(usd)),
            ("cost at least (every node busy throughout)", usd_text(least)),
        ]
    budget = result["max_cost"]
    if budget is not None:
        said = "refused before it runs" if budget["refused"] else "within it, by the estimate"
        rows.append((f"max_cost ${budget['usd']:g}", said))
    for label, value in rows:
        table.add_row(label, str(value))
    console = Console()
    console.print(table)
    cost = result["cost"]
    node_type = result["node_type"]["name"]
    if estimated is None:
        console.print("Give --seconds-per-input S for the job's node-hours and cost.")
    elif cost["usd_per_node_hour"] is None:
        console.print(f"No price: {cost['price']}.", highlight=False)
    else:
        console.print(
            f"An estimate, not a bill: {node_type} at {usd_text(cost['usd_per_node_hour'])} an "
            f"hour ({cost['price']}); booting, idle standby nodes, disks and network are not "
            "counted.",
            highlight=False,
        )
    if budget is not None and budget["refused"]:
        console.print(budget["why"], highlight=False)
