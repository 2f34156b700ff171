"""`burla login`, `burla logout`, `burla whoami`: which cluster this client uses, as whom."""

from __future__ import annotations

import os

import click

from burla.cli.connect import cluster_options, session
from burla.cli.output import emit


@click.command()
@click.argument("login_string")
def login(login_string: str) -> None:
    """Set this client up for a cluster from a login string (its admin makes one with
    `burla tokens create YOUR_NAME`): its address, the fingerprint of its certificate and
    your token go to your config file, once the cluster has answered to them.

    \b
    Example:
      burla login burla-login:1:eyJ1cmwiOiAiaHR0cHM6Ly8...
    """
    from burla.client.config_file import update_config
    from burla.client.connection import Connection
    from burla.client.local import remote
    from burla.client.login import Login
    from burla.core.settings import config_path

    given = Login.decode(login_string)
    connection = Connection(remote(given.url, given.token, given.cert_sha256))
    try:
        user = connection.call("GET", "/me").json()["user"]
    finally:
        connection.close()
    path = config_path(os.environ)
    settings = {
        "backend": "gcp",
        "main_url": given.url,
        "main_cert_sha256": given.cert_sha256,
        "token": given.token,
    }
    update_config(path, settings)
    click.echo(f"logged in to {given.url} as {user}; settings written to {path}")


@click.command()
def logout() -> None:
    """Forget the cluster and token in your config file (other settings stay).

    \b
    Example:
      burla logout
    """
    from burla.client.config_file import read_config, update_config
    from burla.core.settings import config_path

    path = config_path(os.environ)
    known = read_config(path)
    url = known.get("main_url")
    forget = ("backend", "main_url", "main_cert_sha256", "token")
    update_config(path, dict.fromkeys(forget))
    click.echo(f"logged out of {url}" if url else "no cluster was set; nothing to forget")


@click.command()
@cluster_options
def whoami(backend: str | None, as_json: bool) -> None:
    """Who the cluster takes you for, and which cluster that is.

    \b
    Example:
      burla whoami
    """
    connection = session(backend)
    user = connection.call("GET", "/me").json()["user"]
    cluster = connection.cluster
    answer = {"user": user, "url": cluster.url, "cert_sha256": cluster.cert_sha256}
    pinned = f" (certificate {cluster.cert_sha256})" if cluster.cert_sha256 else ""
    emit(answer, as_json, lambda: click.echo(f"{user} at {cluster.url}{pinned}"))
