"""`burla cluster`, `burla standby`, `burla nodes`, `burla dashboard`: a running cluster."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from burla.backends.gcp.prices import PRICES_READ_ON, ClusterCost, NoListPrice, cluster_cost
from burla.cli.connect import cluster_options, session
from burla.cli.output import emit, table

if TYPE_CHECKING:
    from burla.client.connection import Connection


@click.group()
def cluster() -> None:
    """The cluster your settings name (or --backend): its state, and a restart."""


@cluster.command("status")
@cluster_options
def cluster_status(backend: str | None, as_json: bool) -> None:
    """Nodes by type and state, CPUs busy, jobs running, the standby definition, and the
    nodes lost lately (preempted spot VMs apart from machines that failed); for a cloud
    cluster, what its nodes cost per hour at Compute Engine list prices (spot rates for
    spot node types, on-demand for the others, in the region of your settings' zone; GPUs
    and disks not included).

    \b
    Example:
      burla cluster status --backend local --json
    """
    _emit_cluster(backend, as_json, "GET", "/cluster")


MAX_GB_OPTION = click.option(
    "--max-gb",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Gigabytes of packages each node may keep unpacked, and the cluster archived.",
)
RESULTS_MAX_GB_OPTION = click.option(
    "--results-max-gb",
    type=click.FloatRange(min=0),
    default=None,
    help="Also keep finished jobs' results within this many gigabytes, removing the jobs "
    "that finished longest ago.",
)


@cluster.command("prune")
@MAX_GB_OPTION
@RESULTS_MAX_GB_OPTION
@cluster_options
def cluster_prune(
    max_gb: float, results_max_gb: float | None, backend: str | None, as_json: bool
) -> None:
    """Free disk on every node: each keeps the packages it unpacked for jobs within
    MAX_GB, least recently used going first (never those of a running job), and so does
    the cluster's bucket, their archives. Nodes do this after every job too, and
    main_service after every package it builds, within BURLA_PACKAGES_MAX_GB (20 by
    default). With
    --results-max-gb, the Store keeps finished jobs' results within it too, as
    main_service does after jobs within BURLA_RESULTS_MAX_GB (10 by default). Admin only.

    
    Example:
      burla cluster prune --max-gb 5 --results-max-gb 2
    """
    pruned(session(backend), max_gb, results_max_gb, as_json)


def pruned(
    connection: Connection, max_gb: float, results_max_gb: float | None, as_json: bool
) -> None:
    params: dict[str, float] = {"max_gb": max_gb}
    if results_max_gb is not None:
        params["results_max_gb"] = results_max_gb
    answer = connection.call("POST", "/admin/prune", params=params).json()
    nodes = answer["nodes"]
    done = sorted(node for node, ok in nodes.items() if ok)

    def show() -> None:
        click.echo(f"{len(done)} of {len(nodes)} nodes keep at most {max_gb:g} GB of packages")
        archives = answer["archives"]
        click.echo(
            f"{len(archives['removed'])} package archives removed "
            f"({archives['freed_bytes'] / 1e6:.1f} MB); {archives['kept_bytes'] / 1e6:.1f} MB kept"
        )
        if (results := answer.get("results")) is not None:
            click.echo(
                f"{len(results['jobs'])} finished jobs removed ({results['freed_bytes'] / 1e6:.1f} "
                f"MB of results); {results['kept_bytes'] / 1e6:.1f} MB kept"
            )

    emit(answer, as_json, show)


@cluster.command("restart")
@cluster_options
def cluster_restart(backend: str | None, as_json: bool) -> None:
    """Restart the cluster into its standby definition: nodes are replaced, running jobs
    lose theirs.

    \b
    Example:
      burla cluster restart
    """
    _emit_cluster(backend, as_json, "POST", "/restart_cluster")


def _emit_cluster(backend: str | None, as_json: bool, method: str, path: str) -> None:
    """Send the cluster a request it answers with its state, and show that state."""
    connection = session(backend)
    state = connection.call(method, path).json()
    url = connection.cluster.url
    cost = _cloud_cost(backend, state)
    data = {"url": url, **state, **_cost_fields(cost)}
    emit(data, as_json, lambda: _show_cluster(url, state, cost))


def _cloud_cost(backend: str | None, state: dict[str, Any]) -> ClusterCost | None:
    """What a cloud cluster's nodes cost per hour; None for a local one (this machine)."""
    from burla.core.settings import load_settings

    settings = load_settings()
    if (backend or settings.backend) != "gcp":
        return None
    nodes = {
        node_type: sum(states.values()) for node_type, states in state["nodes_by_type"].items()
    }
    # Spot prices for the node types main_service says are spot: it alone knows.
    return cluster_cost(nodes, settings.gcp.region, spot=_spot_types(state))


def _spot_types(state: dict[str, Any]) -> set[str]:
    """The node types of the cluster's nodes and standby definition that are spot."""
    types = [group["node_type"] for group in state["standby"]["nodes"]]
    return {node["type"] for node in state["nodes"] if node.get("spot")} | {
        node_type["name"] for node_type in types if node_type.get("spot")
    }


def _cost_fields(cost: ClusterCost | None) -> dict[str, Any]:
    if cost is None:
        return {
            "cost_per_hour_usd": None,
            "prices_read_on": None,
            "cost_basis": "a local cluster runs on this machine: no list price",
            "cost_missing": {},
        }
    total = cost.usd_per_hour
    return {
        "cost_per_hour_usd": None if total is None else round(total, 6),
        "prices_read_on": PRICES_READ_ON.isoformat(),
        "cost_basis": cost.basis,
        "cost_missing": cost.unpriced,
    }


def _show_cluster(url: str, state: dict[str, Any], cost: ClusterCost | None) -> None:
    click.echo(f"cluster at {url}: dashboard at {url}/dashboard")
    click.echo(
        f"CPUs busy: {state['cpus_busy']} of {state['cpus']}; jobs running: {state['jobs_running']}"
    )
    rows = [
        (node_type, states.get("booting", 0), states.get("ready", 0), states.get("busy", 0))
        for node_type, states in state["nodes_by_type"].items()
    ]
    table(("node type", "booting", "ready", "busy"), rows)
    if cost is not None:
        _show_cost(cost, spot_known=all("spot" in node for node in state["nodes"]))
    _show_standby(state["standby"])
    _show_losses(state.get("node_losses"))
    for error in state["creation_errors"]:
        when = time.strftime("%H:%M:%S", time.localtime(error["at"]))
        click.echo(f"machine error at {when}: {error['message']}", err=True)


LOSSES_SHOWN = 10


def _show_losses(losses: dict[str, Any] | None) -> None:
    """How many nodes were lost, by cause (a preempted spot VM apart from a machine that
    failed), and the latest few."""
    counts = {cause: n for cause, n in (losses or {}).get("counts", {}).items() if n}
    if not losses or not counts:
        return
    each = ", ".join(f"{n} {cause}" for cause, n in counts.items())
    click.echo(f"nodes lost since main_service started: {each}")
    for loss in losses["recent"][-LOSSES_SHOWN:]:
        when = time.strftime("%H:%M:%S", time.localtime(loss["at"]))
        job = f", on job {loss['job_id']}" if loss["job_id"] else ""
        click.echo(f"  {when} {loss['node_id']} ({loss['node_type']}{job}): {loss['cause']}")


def _show_cost(cost: ClusterCost, spot_known: bool) -> None:
    rows = []
    for machine_type, (count, price) in cost.by_type.items():
        bought = "spot" if machine_type in cost.spot else "on-demand"
        if isinstance(price, NoListPrice):
            rows.append((machine_type, bought, count, "n/a", "n/a"))
        else:
            each = price.usd_per_hour
            rows.append((machine_type, bought, count, _usd(each), _usd(count * each)))
    table(("machine type", "VMs", "nodes", "$/hour each", "$/hour"), rows)
    unpriced = cost.unpriced
    if not unpriced:
        click.echo(f"total: {_usd(cost.priced_usd_per_hour)} per hour")
    else:
        nodes = sum(cost.by_type[machine_type][0] for machine_type in unpriced)
        click.echo(
            f"total: at least {_usd(cost.priced_usd_per_hour)} per hour "
            f"({nodes} node{'s' if nodes != 1 else ''} without a list price)"
        )
    unknown = "" if spot_known else " (the cluster does not say which of its VMs are spot)"
    click.echo(cost.basis + unknown)
    for machine_type, reason in unpriced.items():
        click.echo(f"{machine_type}: n/a, {reason}")


def _usd(amount: float) -> str:
    return f"${amount:,.4f}"


@click.group()
def standby() -> None:
    """The standby definition: the nodes and containers kept waiting for jobs."""


@standby.command("show")
@cluster_options
def standby_show(backend: str | None, as_json: bool) -> None:
    """Print the standby definition (its --json is what `burla standby set` reads).

    \b
    Example:
      burla standby show --json > standby.json
    """
    state = session(backend).call("GET", "/cluster").json()
    emit(state["standby"], as_json, lambda: _show_standby(state["standby"]))


@standby.command("set")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@cluster_options
def standby_set(file: Path, backend: str | None, as_json: bool) -> None:
    """Replace the standby definition with FILE's (JSON, as `burla standby show --json`
    prints) and restart the cluster into it.

    \b
    Example, keep two nodes of four CPUs waiting:
      burla standby show --json > standby.json
      (edit "count" and "cpus" in standby.json)
      burla standby set standby.json
    """
    try:
        definition = json.loads(file.read_text())
    except ValueError as error:
        raise click.BadParameter(f"{file} is not JSON: {error}", param_hint="FILE") from None
    state = session(backend).call("PUT", "/standby", json_body=definition).json()
    emit(state["standby"], as_json, lambda: _show_standby(state["standby"]))


def _show_standby(definition: dict[str, Any]) -> None:
    rows = [
        (
            group["count"],
            group["node_type"]["name"],
            group["node_type"]["cpus"],
            group["node_type"]["ram_gb"],
            "spot" if group["node_type"].get("spot") else "on-demand",
        )
        for group in definition["nodes"]
    ]
    table(("standby nodes", "type", "CPUs", "RAM GB", "VMs"), rows)
    images = ", ".join(spec["image"] for spec in definition["containers"]) or "none"
    click.echo(f"containers on every node: {images}")


@click.command()
@cluster_options
def nodes(backend: str | None, as_json: bool) -> None:
    """The cluster's nodes: type, CPUs, state and the job each one runs.

    \b
    Example:
      burla nodes --json
    """
    state = session(backend).call("GET", "/cluster").json()
    rows = [(n["node_id"], n["type"], n["cpus"], n["state"], n["job_id"]) for n in state["nodes"]]
    emit(state["nodes"], as_json, lambda: table(("node", "type", "CPUs", "state", "job"), rows))


@click.command()
@cluster_options
def dashboard(backend: str | None, as_json: bool) -> None:
    """Print the link that opens the cluster's web dashboard in a browser, signed in.

    The link holds your token (the cluster's own, or the user's in BURLA_TOKEN): the
    browser keeps it in a cookie and drops it from the address. Anyone with the link can
    use the cluster as you; share it as you would the token.

    \b
    Example:
      burla dashboard
    """
    connection = session(backend)
    connection.call("GET", "/health")
    url = f"{connection.cluster.url}/dashboard?token={connection.cluster.token}"
    emit({"url": url}, as_json, lambda: click.echo(url))
