"""`burla deploy` and `burla destroy`: a cluster on Google Cloud, made or removed in one
command (see burla.deploy)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from burla.core.errors import InvalidRequestError

_ENDPOINTS_HELP = "a JSON file of stand-ins of Google's APIs, used without credentials (tests)"


def _cluster_options(function: Any) -> Any:
    """The options that name a cluster: deploy's and destroy's."""
    for option in reversed(
        [
            click.option("--project", required=True, help="the Google Cloud project"),
            click.option("--region", required=True, help="e.g. us-central1"),
            click.option("--zone", help="where the VMs run (default: REGION-a)"),
            click.option("--cluster", default="burla", show_default=True, help="its name"),
            click.option("--endpoints", type=click.Path(dir_okay=False), hidden=True),
        ]
    ):
        function = option(function)
    return function


@click.command()
@_cluster_options
@click.option("--machine-type", default="n2-standard-4", show_default=True, help="nodes' type")
@click.option("--spot", is_flag=True, help="nodes are spot VMs: cheaper, and may be preempted")
@click.option("--main-machine-type", default="e2-standard-2", show_default=True)
@click.option("--standby", type=int, default=1, show_default=True, help="nodes kept waiting")
@click.option("--max-nodes", type=int, help="most nodes at once (default: no limit)")
@click.option(
    "--allow",
    multiple=True,
    metavar="CIDR",
    help="who may reach main_service (repeatable; default: your own public address, "
    "which --allow replaces)",
)
@click.option("--port", type=int, default=8443, show_default=True, help="main_service's port")
@click.option("--pythons", default="3.11", show_default=True, help="default images' Pythons")
@click.option(
    "--containers",
    type=click.Choice(["docker", "process"]),
    default="docker",
    show_default=True,
    help="what the nodes' workers run in",
)
@click.option("--source-image", hidden=True)
@click.option("--vm-env", multiple=True, hidden=True, metavar="NAME=VALUE")
@click.option("--dry-run", is_flag=True, help="show the plan and stop")
@click.option("--wait-s", type=float, hidden=True)
def deploy(dry_run: bool, wait_s: float | None, **given: Any) -> None:
    """Make a burla cluster on Google Cloud, or bring one to what is asked: enable the
    APIs, make its service account and roles, Firestore database, bucket, registry,
    firewall rules and main_service's VM, then write this client's settings.

    It shows a plan of every resource first (= exists, + create, ~ update); run again,
    it changes only what is missing or different. Needs Google credentials of a project
    owner (`gcloud auth application-default login`).

    \b
    Example:
      burla deploy --project my-project --region us-central1
    """
    from burla.core.settings import config_path
    from burla.deploy.deploy import READY_TIMEOUT_S, deploy, plan_deploy

    options, endpoints = _options(given)
    click.echo(
        f"burla deploy: cluster {options.cluster!r} in project {options.project} "
        f"({options.zone_name}); access from {', '.join(options.allow)}"
    )
    _, plan = plan_deploy(options, endpoints)
    for planned in plan:
        click.echo(planned.line())
    if dry_run:
        click.echo("dry run: nothing changed")
        return
    path = config_path(os.environ)
    done = deploy(
        options, path, lambda line: click.echo(f"  {line}"), endpoints, wait_s or READY_TIMEOUT_S
    )
    what = f"{done.changed} resource(s) made or changed" if done.changed else "nothing to change"
    click.echo(
        f"cluster {options.cluster!r} serves at {done.url} ({what}); settings written to "
        f"{path}\ncertificate fingerprint: {done.cert_sha256}\n"
        "next: remote_parallel_map(f, inputs) runs there; `burla tokens create NAME` "
        "lets someone else in"
    )


@click.command()
@_cluster_options
@click.option("--yes", is_flag=True, help="delete the cluster's data without asking")
def destroy(yes: bool, **given: Any) -> None:
    """Remove everything `burla deploy` made for a cluster: its VMs, firewall rules,
    registry and service account, and (asked first, unless --yes) its Firestore documents,
    bucket objects and bucket. APIs stay enabled; the Firestore database stays.

    \b
    Example:
      burla destroy --project my-project --region us-central1
    """
    from burla.deploy.destroy import destroy as remove
    from burla.deploy.google import GoogleClients

    options, endpoints = _options({**given, "allow": ("0.0.0.0/0",)})
    clients = GoogleClients(options.project, endpoints)

    def may_delete(data: str) -> bool:
        return yes or click.confirm(f"delete the cluster's data ({data})?", default=False)

    removed = remove(options, clients, may_delete, lambda line: click.echo(f"  {line}"))
    listing = "; ".join(removed) if removed else "nothing (no such cluster)"
    click.echo(f"removed cluster {options.cluster!r}: {listing}")


def _options(given: dict[str, Any]) -> tuple[Any, Any]:
    """DeployOptions and GoogleEndpoints from the flags; burla's errors for bad ones."""
    from pydantic import ValidationError

    from burla.deploy.options import DeployOptions, GoogleEndpoints

    endpoints_file = given.pop("endpoints", None)
    endpoints = None
    if endpoints_file:
        endpoints = GoogleEndpoints.model_validate(json.loads(Path(endpoints_file).read_text()))
    pairs = given.pop("vm_env", ()) or ()
    given["vm_env"] = dict(_pair(item) for item in pairs)
    if not given.get("allow"):
        from burla.deploy.own_address import own_address

        given["allow"] = (f"{own_address()}/32",)
    fields = {name: value for name, value in given.items() if value is not None}
    try:
        return DeployOptions(**fields), endpoints
    except ValidationError as error:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        raise InvalidRequestError(problems) from None


def _pair(item: str) -> tuple[str, str]:
    name, equals, value = item.partition("=")
    if not equals or not name:
        raise InvalidRequestError(f"--vm-env {item!r} is not NAME=VALUE")
    return name, value
