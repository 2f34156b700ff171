"""`burla users` and `burla tokens`: who may use a cluster. Only the cluster's admin (its
own token: a local cluster's is in its cluster.json) may add or remove users and make or
revoke their tokens; each user then sees and cancels only their own jobs."""

from __future__ import annotations

import time
from typing import Any

import click

from burla.cli.connect import cluster_options, session
from burla.cli.costs import show_user_costs
from burla.cli.output import emit, table


@click.group()
def users() -> None:
    """The cluster's users (admin only).

    \b
    Examples:
      burla users add alice
      burla tokens create alice      prints alice's token, once
      burla users list
      burla users remove alice       also revokes alice's tokens
    """


@users.command("add")
@click.argument("name")
@cluster_options
def users_add(name: str, backend: str | None, as_json: bool) -> None:
    """Add a user; give them a token with `burla tokens create NAME`.

    \b
    Example:
      burla users add alice
    """
    added = session(backend).call("POST", "/users", json_body={"name": name}).json()
    emit(added, as_json, lambda: click.echo(f"added user {name}; next: burla tokens create {name}"))


@users.command("list")
@cluster_options
def users_list(backend: str | None, as_json: bool) -> None:
    """Every user and how many tokens each has.

    \b
    Example:
      burla users list --json
    """
    found = session(backend).call("GET", "/users").json()["users"]
    rows = [(user["name"], user["tokens"], _when(user["created_at"])) for user in found]
    emit(found, as_json, lambda: table(("user", "tokens", "added"), rows))


@users.command("costs")
@cluster_options
def users_costs(backend: str | None, as_json: bool) -> None:
    """Each user's jobs together: how many, their node-seconds and what they cost, over
    every job the cluster keeps a record of (a user who is not the admin: their own).

    \b
    Example:
      burla users costs
    """
    found = session(backend).call("GET", "/costs").json()["users"]
    emit(found, as_json, lambda: show_user_costs(found))


@users.command("remove")
@click.argument("name")
@cluster_options
def users_remove(name: str, backend: str | None, as_json: bool) -> None:
    """Remove a user and revoke every token of theirs. Their jobs keep running, as the
    admin's: a user of the same name added later does not get them.

    \b
    Example:
      burla users remove alice
    """
    removed = session(backend).call("DELETE", f"/users/{name}").json()
    count, jobs = len(removed["revoked"]), removed["jobs_retired"]
    said = f"removed user {name}; revoked {count} token(s); {jobs} job(s) now the admin's only"
    emit(removed, as_json, lambda: click.echo(said))


@click.group()
def tokens() -> None:
    """The users' tokens (admin only): the cluster keeps only their hashes.

    \b
    A user puts theirs in ~/.burla/config.toml (token = "..."), or in BURLA_TOKEN.
    Examples:
      burla tokens create alice
      burla tokens list
      burla tokens revoke 3fa9c2d1
    """


@tokens.command("create")
@click.argument("user")
@cluster_options
def tokens_create(user: str, backend: str | None, as_json: bool) -> None:
    """Make a token for USER and print it in a login string, which sets up USER's client
    in one step (`burla login STRING`): this is the only time it is shown.

    \b
    Example:
      burla tokens create alice
    """
    from burla.client.login import Login

    connection = session(backend)
    made = connection.call("POST", "/tokens", json_body={"user": user}).json()
    cluster = connection.cluster
    made["login"] = Login(cluster.url, made["token"], cluster.cert_sha256).encode()

    def show() -> None:
        click.echo(made["login"])
        click.echo(
            f"token {made['id']} of {user}, in a login string: shown once. {user} runs "
            f"`burla login <it>`; revoke it with `burla tokens revoke {made['id']}`",
            err=True,
        )

    emit(made, as_json, show)


@tokens.command("list")
@cluster_options
def tokens_list(backend: str | None, as_json: bool) -> None:
    """Every token's id, user and when it was made (never the token itself).

    \b
    Example:
      burla tokens list
    """
    found = session(backend).call("GET", "/tokens").json()["tokens"]
    rows = [(token["id"], token["user"], _when(token["created_at"])) for token in found]
    emit(found, as_json, lambda: table(("id", "user", "created"), rows))


@tokens.command("revoke")
@click.argument("token_id")
@cluster_options
def tokens_revoke(token_id: str, backend: str | None, as_json: bool) -> None:
    """Revoke a token by its id (from `burla tokens list`): refused from then on.

    \b
    Example:
      burla tokens revoke 3fa9c2d1
    """
    revoked: dict[str, Any] = session(backend).call("DELETE", f"/tokens/{token_id}").json()
    emit(
        revoked,
        as_json,
        lambda: click.echo(f"revoked token {token_id} of {revoked['user']}"),
    )


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
