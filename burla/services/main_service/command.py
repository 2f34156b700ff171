"""main_service's command line: `cloud`, and `local` when __main__ could not read it
without a parser (help, or a mistake to point out); see local_start."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, get_args

import click

from burla.core.errors import BurlaError
from burla.services import running
from burla.services.main_service.local_start import Containers, LocalFlags, serve_local

LOCAL_DEFAULTS = LocalFlags._field_defaults
"""The `local` flags' defaults: those __main__ reads the command line with."""


class LocalByDefault(click.Group):
    """Flags with no command before them are `local`'s: the local cluster's launcher
    (burla.client.local) starts main_service with its flags alone."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0].startswith("-") and args[0] not in ctx.help_option_names:
            args = ["local", *args]
        return super().parse_args(ctx, args)


@click.group(cls=LocalByDefault)
def main() -> None:
    """Serve a burla cluster's main_service: this machine's cluster (local, the default) or
    one on Google Cloud (cloud)."""


@main.command()
@click.option(
    "--local-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="the cluster's directory: its Store, blobs, nodes and cluster.json",
)
@click.option("--cpus", type=int, default=LOCAL_DEFAULTS["cpus"], help="the node's CPUs")
@click.option(
    "--idle-s",
    type=float,
    default=LOCAL_DEFAULTS["idle_s"],
    help="stop after this long with no jobs",
)
@click.option(
    "--containers",
    type=click.Choice(get_args(Containers)),
    default=LOCAL_DEFAULTS["containers"],
    help="what the nodes' workers run in: processes (default) or Docker containers",
)
@click.option("--detach", is_flag=True, help="run in the background, in a session of its own")
def local(local_dir: Path, cpus: int, idle_s: float, containers: Containers, detach: bool) -> None:
    """This machine's cluster (the default).

    Its state is in one directory (see burla.client.local), and only one main_service runs
    per directory: a second one exits at once. With `--containers docker`, the engine and
    the default image are checked before anything starts (and before `--detach` lets the
    caller go), so that a cluster that could never run a job fails at once; containers the
    nodes could not stop themselves (a node that was killed) are removed when it starts
    and stops.
    """
    serve_local(LocalFlags(local_dir, cpus, idle_s, containers, detach))


CLOUD_FLAGS: list[click.Parameter] = [
    click.Option(
        ["--host"], default="0.0.0.0", help="address to listen on (default: every interface)"
    ),
    click.Option(
        ["--port"],
        type=int,
        default=8080,
        envvar="PORT",  # Cloud Run names the port in $PORT
        help="port to listen on (default: $PORT or 8080)",
    ),
    click.Option(
        ["--url"],
        help="the URL nodes reach main_service at, e.g. http://10.128.0.2:8080 "
        "(default: http://HOST:PORT; needed when HOST is 0.0.0.0)",
    ),
    click.Option(
        ["--token-file"],
        type=click.Path(dir_okay=False, path_type=Path),
        help="read the clients' token here, or write a new one here "
        "(default: $BURLA_TOKEN, else a new token, printed)",
    ),
    click.Option(
        ["--store"],
        metavar="URL",
        help="the cluster's database: firestore://PROJECT/NAMESPACE or, e.g. on Memorystore, "
        "redis://HOST:PORT/DB?namespace=NAME (default: Firestore in the project, namespaced "
        "by the cluster's name)",
    ),
    click.Option(
        ["--tls-dir"],
        type=click.Path(file_okay=False, path_type=Path),
        help="serve HTTPS with the certificate in this directory, made there (with a key "
        "that never leaves it) if there is none; clients pin its fingerprint, which is "
        "printed (default: plain HTTP)",
    ),
    click.Option(
        ["--tls-name"],
        multiple=True,
        metavar="ADDRESS",
        help="an IP address or host name a new certificate is made for (repeatable)",
    ),
    click.Option(["--max-nodes"], type=int, help="most VMs at once (default: no limit)"),
    click.Option(
        ["--max-nodes-per-job"], type=int, help="most VMs one job runs on (default: no limit)"
    ),
    click.Option(
        ["--signer"],
        default="iam",
        envvar="BURLA_SIGNER",
        help="how Cloud Storage URLs are signed: `iam` (as the service account of the default "
        "credentials) or a service account key file, which must then be at the same path on "
        "the nodes (default: iam)",
    ),
    click.Option(
        ["--compute-endpoint"],
        envvar="BURLA_COMPUTE_ENDPOINT",
        help="a stand-in of the Compute Engine API to use without credentials, e.g. "
        "http://127.0.0.1:8089 (tests)",
    ),
    click.Option(
        ["--install-command"],
        help="shell commands a new VM runs to install burla; `none` when the source image "
        "holds it (default: pip install into /opt/burla)",
    ),
    click.Option(
        ["--install-file"],
        type=click.Path(dir_okay=False, path_type=Path),
        help="like --install-command, the commands read from this file",
    ),
    click.Option(
        ["--node-command"],
        help="the command that starts node_service on a VM "
        "(default: /opt/burla/bin/python -m burla.services.node_service)",
    ),
    click.Option(
        ["--node-dir"], default="/var/lib/burla/node", help="node_service's directory on a VM"
    ),
    click.Option(
        ["--node-local-dir"],
        default="/var/lib/burla",
        help="where a VM keeps the worker environment (BURLA_LOCAL_DIR)",
    ),
    click.Option(["--node-host"], default="0.0.0.0", help="where node_service listens on its VM"),
    click.Option(
        ["--node-env"],
        multiple=True,
        envvar="BURLA_NODE_ENV",  # NAME=VALUE pairs, separated by spaces
        metavar="NAME=VALUE",
        help="another variable for node_service's environment (repeatable)",
    ),
    click.Option(
        ["--service-account"], default="default", help="the service account the VMs run as"
    ),
]
"""The flags of `cloud`, the fields of CloudOptions."""


@main.command(params=CLOUD_FLAGS)
def cloud(**options: Any) -> None:
    """A cluster on Google Cloud. The project, zone, machine type, standby size, bucket and
    cluster name come from [gcp] in ~/.burla/config.toml ($BURLA_CONFIG) and BURLA_GCP_*
    variables.

    Nodes open the Store and blob store main_service opens, from URLs in their boot
    environment; FIRESTORE_EMULATOR_HOST and STORAGE_EMULATOR_HOST, when set, are passed
    on to them. Stopping main_service (SIGTERM, SIGINT) deletes its VMs; one that stops on
    an error (or is killed) leaves them, and the next main_service takes on those still
    running (their jobs go on through the Store).
    """
    from burla.core.settings import load_settings
    from burla.services.main_service.boot import serve_cloud
    from burla.services.main_service.cloud_config import (
        CloudOptions,
        make_plan,
        require_gcp_extra,
    )

    problem = ""
    try:
        require_gcp_extra()
        plan = make_plan(CloudOptions(**options), load_settings().gcp, os.environ)
        running.run(serve_cloud, plan)
    except* (BurlaError, ImportError) as failed:
        problem = "; ".join(str(leaf) for leaf in running.leaf_errors(failed))
    if problem:
        sys.exit(f"burla main_service: {problem}")
