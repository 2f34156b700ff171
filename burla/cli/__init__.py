"""The `burla` command: operate a cluster and its jobs from a shell.

Every command that reads something takes --json for scripts; the exit codes are in
burla.cli.output.
"""

from __future__ import annotations

import click

from burla.cli import output
from burla.cli.cluster import cluster, dashboard, nodes, standby
from burla.cli.deploy import deploy, destroy
from burla.cli.image import image
from burla.cli.jobs import jobs
from burla.cli.local import local
from burla.cli.login import login, logout, whoami
from burla.cli.plan import plan
from burla.cli.sim import sim
from burla.cli.users import tokens, users
from burla.core.errors import BurlaError, ClusterUnavailableError, JobError, NotFoundError


@click.group(epilog=output.EXIT_CODES_HELP)
@click.version_option(package_name="burla-cluster")
def cli() -> None:
    """Run one Python function over many inputs on a cluster; see and steer the cluster.

    \b
    Examples:
      burla local up                 start this machine's cluster
      burla deploy --project P --region R   a cluster on Google Cloud, in one command
      burla cluster status           nodes, CPUs busy, jobs, standby definition
      burla jobs                     jobs, newest first
      burla jobs logs JOB --follow   what a job prints, live
      burla jobs repro JOB 7 --pdb   run a job's failed input 7 here, in a debugger
      burla dashboard                a link to the web dashboard
      burla tokens create alice      a login string for user alice (after `burla users add alice`)
      burla login LOGIN_STRING       use the cluster a login string names
    """


COMMANDS = (local, cluster, standby, nodes, jobs, dashboard, plan, sim, image, users, tokens)
for command in (*COMMANDS, deploy, destroy, login, logout, whoami):
    cli.add_command(command)


def exit_code(error: BurlaError) -> int:
    if isinstance(error, ClusterUnavailableError):
        return output.NOT_RUNNING
    if isinstance(error, NotFoundError):
        return output.NOT_FOUND
    if isinstance(error, JobError):
        return output.JOB_FAILED
    return output.USAGE


def main(argv: list[str] | None = None) -> int:
    """Run the command; an error prints one line (`burla: error: ...`) and exits with the
    code `burla --help` lists."""
    try:
        cli.main(args=argv, prog_name="burla", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("burla: aborted", err=True)
        return output.INTERRUPTED
    except click.UsageError as error:
        click.echo(f"burla: error: {error.format_message()}", err=True)
        return output.USAGE
    except BurlaError as error:
        click.echo(f"burla: error: {error}", err=True)
        return exit_code(error)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else output.OK
    return output.OK
