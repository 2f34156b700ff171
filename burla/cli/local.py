"""`burla local up|down|status`: this machine's cluster, by hand."""

from __future__ import annotations

from typing import Any

import click

from burla.cli.cluster import MAX_GB_OPTION, RESULTS_MAX_GB_OPTION, pruned
from burla.cli.connect import session
from burla.cli.output import NOT_RUNNING, emit, json_option, table


@click.group()
def local() -> None:
    """The embedded local cluster: main_service, a node and its workers on this machine.

    remote_parallel_map starts it on first use; these commands manage it by hand.
    Its state lives in $BURLA_LOCAL_DIR (default ~/.burla/local); with --backend docker,
    the cluster whose workers are Docker containers, in $BURLA_DOCKER_DIR (~/.burla/docker).

    \b
    Example:
      burla local up --cpus 4 && burla local status
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
@json_option
def local_up(cpus: int | None, backend: str, as_json: bool) -> None:
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
    if running and (ignored := local_cluster.size_ignored(running, cpus, backend)):
        click.echo(f"burla: note: {ignored}", err=True)
    info = {"url": cluster.url, "pid": cluster.pid, "cpus": cluster.cpus, "started": not running}
    emit(
        {**info, "dashboard": f"{cluster.url}/dashboard"},
        as_json,
        lambda: click.echo(
            f"local cluster {verb} at {cluster.url} (pid {cluster.pid}, {cluster.cpus} CPUs); "
            "`burla dashboard` opens its dashboard"
        ),
    )


@local.command("down")
@BACKEND_OPTION
@json_option
def local_down(backend: str, as_json: bool) -> None:
    """Stop the local cluster and every process it started.

    \b
    Example:
      burla local down
    """
    from burla.client import local as local_cluster

    stopped = local_cluster.stop(local_cluster.local_dir(backend))
    emit(
        {"stopped": stopped},
        as_json,
        lambda: click.echo("local cluster stopped" if stopped else "no local cluster was running"),
    )


@local.command("prune")
@MAX_GB_OPTION
@RESULTS_MAX_GB_OPTION
@BACKEND_OPTION
@json_option
def local_prune(max_gb: float, results_max_gb: float | None, backend: str, as_json: bool) -> None:
    """Free disk: the local cluster keeps the packages it unpacked for jobs, and their
    archives, within MAX_GB each, least recently used going first (never those of a
    running job); with
    --results-max-gb, finished jobs' results within that, the longest finished going
    first (main_service does this after jobs within BURLA_RESULTS_MAX_GB, 10 by default).

    
    Example:
      burla local prune --max-gb 0 --results-max-gb 1
    """
    pruned(session(backend), max_gb, results_max_gb, as_json)


@local.command("status")
@json_option
@BACKEND_OPTION
def local_status(as_json: bool, backend: str) -> None:
    """Whether the local cluster runs, and its nodes. Exits 3 when it does not run.

    \b
    Example:
      burla local status --json
    """
    from burla.cli.connect import session
    from burla.client import local as local_cluster

    cluster = local_cluster.find(local_cluster.local_dir(backend))
    if cluster is None:
        emit({"running": False}, as_json, lambda: click.echo("no local cluster is running"))
        raise SystemExit(NOT_RUNNING)
    state: dict[str, Any] = session(backend).call("GET", "/cluster").json()

    def show() -> None:
        click.echo(f"local cluster at {cluster.url} (pid {cluster.pid}, {cluster.cpus} CPUs)")
        rows = [(n["node_id"], n["cpus"], n["state"], n["job_id"]) for n in state["nodes"]]
        table(("node", "CPUs", "state", "job"), rows)

    emit({"running": True, "url": cluster.url, "pid": cluster.pid, **state}, as_json, show)
