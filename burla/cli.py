"""The `burla` command."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from burla.core.errors import BurlaError
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


@click.group()
@click.version_option(package_name="burla")
def cli() -> None:
    """Run one Python function over many inputs on a cluster."""


@cli.command()
@click.option(
    "--standby",
    "standby",
    multiple=True,
    metavar="COUNTxCPUS",
    help="Idle nodes waiting for work, e.g. 5x96. Repeat for more node types.",
)
@click.option(
    "--inputs",
    "n_inputs",
    type=click.IntRange(min=0),
    required=True,
    help="Number of inputs in the job.",
)
@click.option(
    "--func-cpu", type=click.IntRange(min=1), default=1, show_default=True, help="CPUs per input."
)
@click.option(
    "--func-ram",
    type=click.FloatRange(min=0, min_open=True),
    default=4.0,
    show_default=True,
    help="GB of RAM per input.",
)
@click.option(
    "--func-gpu", type=click.IntRange(min=0), default=0, show_default=True, help="GPUs per input."
)
@click.option(
    "--max-parallelism",
    type=click.IntRange(min=1),
    default=None,
    help="Run at most this many inputs at once.",
)
@click.option(
    "--node-cpus",
    type=click.IntRange(min=1),
    default=None,
    help="CPUs of the node type started on demand (default: the standby type).",
)
@click.option(
    "--ram-per-cpu",
    type=click.FloatRange(min=0, min_open=True),
    default=4.0,
    show_default=True,
    help="GB of RAM per CPU of every node type.",
)
@click.option(
    "--images",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Container specs kept warm on every node (one container per CPU each).",
)
@click.option(
    "--max-nodes",
    type=click.IntRange(min=0),
    default=None,
    help="Cap on the number of nodes in the cluster.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
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
    nodes = [
        Node(node_id=f"{g.node_type.name}-{i}", node_type=g.node_type, state=NodeState.READY)
        for g in groups
        for i in range(g.count)
    ]
    job = JobSpec(
        job_id="plan",
        n_inputs=n_inputs,
        func_cpu=func_cpu,
        func_ram=func_ram,
        func_gpu=func_gpu,
        max_parallelism=max_parallelism,
    )
    job_plan = plan_job(config, nodes, job)
    node_type = job_plan.node_type
    containers = [
        ContainerInfo(name=f"{spec.image}-{cpu}", image=spec.image, port=0, cpuset=frozenset({cpu}))
        for spec in specs
        for cpu in range(node_type.cpus)
    ]
    kill_plan = plan_containers(
        node_type.cpus,
        containers,
        image=specs[0].image,
        func_cpu=func_cpu,
        max_workers=slots_on(node_type, job),
    )
    result: dict[str, Any] = {
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
        "cpus_per_container": func_cpu,
    }
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_plan(result)


@cli.group()
def local() -> None:
    """The embedded local cluster: main_service, a node and its workers on this machine.

    remote_parallel_map starts it on first use; these commands manage it by hand.
    Its state lives in $BURLA_LOCAL_DIR (default ~/.burla/local); with --backend docker,
    the cluster whose workers are Docker containers, in $BURLA_DOCKER_DIR (~/.burla/docker).
    """


BACKEND_OPTION = click.option(
    "--backend",
    type=click.Choice(["local", "docker"]),
    default="local",
    show_default=True,
    help="Which of this machine's clusters: worker processes, or Docker containers.",
)


@local.command("up")
@click.option(
    "--cpus",
    type=click.IntRange(min=1),
    default=None,
    help="Workers on the node (default: $BURLA_LOCAL_CPUS, else this machine's CPUs).",
)
@BACKEND_OPTION
def local_up(cpus: int | None, backend: str) -> None:
    """Start the local cluster (a no-op if it runs).

    \b
    Example, 16 workers for I/O-bound work on any machine:
      burla local up --cpus 16
    """
    from burla.client import local as local_cluster

    root = local_cluster.local_dir(backend)
    running = local_cluster.find(root)
    cluster = running or local_cluster.start(root, cpus=cpus, backend=backend)
    verb = "already running" if running else "started"
    click.echo(f"local cluster {verb} at {cluster.url} (pid {cluster.pid}, {cluster.cpus} CPUs)")


@local.command("down")
@BACKEND_OPTION
def local_down(backend: str) -> None:
    """Stop the local cluster and every process it started."""
    from burla.client import local as local_cluster

    stopped = local_cluster.stop(local_cluster.local_dir(backend))
    click.echo("local cluster stopped" if stopped else "no local cluster was running")


@local.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@BACKEND_OPTION
def local_status(as_json: bool, backend: str) -> None:
    """Whether the local cluster runs, and its nodes. Exits 3 when it does not run."""
    import httpx

    from burla.client import local as local_cluster

    cluster = local_cluster.find(local_cluster.local_dir(backend))
    if cluster is None:
        click.echo(json.dumps({"running": False}) if as_json else "no local cluster is running")
        raise SystemExit(3)
    headers = {"authorization": f"Bearer {cluster.token}"}
    state = httpx.get(f"{cluster.url}/cluster", headers=headers, timeout=10).json()
    if as_json:
        click.echo(json.dumps({"running": True, "url": cluster.url, "pid": cluster.pid, **state}))
        return
    click.echo(f"local cluster at {cluster.url} (pid {cluster.pid}, {cluster.cpus} CPUs)")
    for node in state["nodes"]:
        job = f" running {node['job_id']}" if node["job_id"] else ""
        click.echo(f"  {node['node_id']}  {node['cpus']} CPUs  {node['state']}{job}")


@cli.group()
def jobs() -> None:
    """Jobs on the cluster."""


@jobs.command("result")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON list.")
def jobs_result(job_id: str, as_json: bool) -> None:
    """Wait for a job started with detach=True and print its results, one per line.

    \b
    Example:
      burla jobs result job-1795615775-3fa9c2d1
    """
    from burla.client.map import job_results

    results = job_results(job_id)
    if as_json:
        click.echo(json.dumps(results, default=repr))
    else:
        for value in results:
            click.echo(repr(value))


@cli.group()
def image() -> None:
    """Container images of the Docker backend."""


@image.command("build")
@click.option(
    "--mirror",
    default=None,
    metavar="URL",
    help="Debian mirror debootstrap installs from (default: http://deb.debian.org/debian).",
)
def image_build(mirror: str | None) -> None:
    """Build the default worker image on this machine (about a minute, once; needs root).

    Debian bookworm with python3, made with debootstrap and imported into the local
    Docker engine: no registry is used. Prints progress and the image's tag.

    Example: burla image build
    """
    from burla.backends.docker.image import DEFAULT_MIRROR, build_default_image

    build_default_image(mirror=mirror or DEFAULT_MIRROR, echo=click.echo)


@cli.command("sim")
@click.argument("scenario")
@click.option("--json", "json_out", metavar="PATH", help="Write the report as JSON here.")
@click.option("--plot", "plot_out", metavar="PATH", help="Write the timeline plot (PNG) here.")
def sim(scenario: str, json_out: str | None, plot_out: str | None) -> None:
    """Simulate a cluster: the real main_service and node_services under virtual time.

    SCENARIO is a shipped one (seed, cold, burst, custom-image, node-loss, scale) or the
    path of a scenario file (.yaml or .json). Prints a summary; the JSON holds every
    number, each job and the timeline. A run takes seconds of wall time.

    \b
    Example, the seed's 5 x 96-CPU standby and 1,000 inputs:
      burla sim seed --json seed.json --plot seed.png
    """
    try:
        from burla.sim.command import simulate
    except ImportError as error:
        raise click.UsageError(
            f"the simulator needs its extra ({error}): pip install 'burla[sim]'"
        ) from None
    simulate(scenario, json_out, plot_out, exit_when_done=True)


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


def main(argv: list[str] | None = None) -> int:
    """Run the command; usage errors and refused requests print one line and exit 2."""
    try:
        cli.main(args=argv, prog_name="burla", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("burla: aborted", err=True)
        return 130
    except click.UsageError as error:
        click.echo(f"burla: error: {error.format_message()}", err=True)
        return 2
    except BurlaError as error:
        click.echo(f"burla: error: {error}", err=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
