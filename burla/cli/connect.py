"""Which cluster a `burla` command talks to, found without starting one."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from burla.cli.output import json_option
from burla.core.errors import ClusterUnavailableError

if TYPE_CHECKING:
    from burla.client.connection import Connection

F = TypeVar("F", bound=Callable[..., Any])
BACKENDS = ("local", "docker", "gcp")


def backend_option(function: F) -> F:
    option = click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        default=None,
        help="Which cluster: this machine's (local, docker) or the cloud one in your "
        "settings (gcp). Default: $BURLA_BACKEND or the config file, else local.",
    )
    return option(function)


def cluster_options(function: F) -> F:
    """--backend and --json: what every command that asks a running cluster takes."""
    return backend_option(json_option(function))


def session(backend: str | None) -> Connection:
    """A session with the cluster `backend` names; ClusterUnavailableError (exit 3) when
    it does not run: these commands look at a cluster, they do not start one."""
    from burla.client import local
    from burla.client.connection import Connection  # the client's imports, only when needed
    from burla.core.settings import config_path, load_settings

    settings = load_settings()
    chosen = backend or settings.backend
    if chosen == "gcp":
        if not settings.main_url or not settings.token:
            raise ClusterUnavailableError(
                "no cloud cluster is set: put main_url and token in "
                f"{config_path(os.environ)} (or BURLA_MAIN_URL and BURLA_TOKEN)"
            )
        cloud = local.remote(settings.main_url, settings.token, settings.main_cert_sha256)
        return _closed_after_command(Connection(cloud))
    root = local.local_dir(chosen)
    cluster = local.find(root)
    if cluster is None:
        flag = " --backend docker" if chosen == "docker" else ""
        raise ClusterUnavailableError(
            f"no {chosen} cluster is running (in {root}); start it with `burla local up{flag}`"
        )
    return _closed_after_command(Connection(cluster))


def _closed_after_command(opened: Connection) -> Connection:
    click.get_current_context().call_on_close(opened.close)
    return opened
