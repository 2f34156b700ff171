"""`burla sim`: a simulated cluster at cloud scale, under virtual time."""

from __future__ import annotations

import click

from burla.core.errors import NotFoundError


@click.command("sim")
@click.argument("scenario")
@click.option("--json", "json_out", metavar="PATH", help="Write the report as JSON here.")
@click.option("--plot", "plot_out", metavar="PATH", help="Write the timeline plot (PNG) here.")
@click.option(
    "--both-ways",
    is_flag=True,
    help="Run a scenario with spot node types as written and again on on-demand machines, "
    "and compare cost and makespan.",
)
def sim(scenario: str, json_out: str | None, plot_out: str | None, both_ways: bool) -> None:
    """Simulate a cluster: the real main_service and node_services under virtual time.

    SCENARIO is a shipped one (seed, cold, burst, custom-image, node-loss, flaky-store,
    main-restart, spot, headline, resume, scale, ten-thousand, million) or the path of a
    scenario file (.yaml or .json). Prints a summary; the JSON holds every number, each
    job and the timeline (`--json -` prints it instead of the summary). Most runs take
    seconds of wall time; ten-thousand and million take minutes.

    A scenario whose users resume their jobs (resume: in a job) runs twice: as written,
    and with each resumed call made whole with the fix; a table shows each resumed job's
    first run, resume and full re-run (inputs run and reused, node-hours, cost).

    With --both-ways, a scenario whose node types include spot ones (spot: true, with
    preemptions_per_hour) runs twice, as written and with every machine on-demand and
    never preempted; a table shows each run's makespan, cost, preemptions, inputs re-run
    and inputs lost, and the JSON holds both reports.

    \b
    Example, the seed's 5 x 96-CPU standby and 1,000 inputs:
      burla sim seed --json seed.json --plot seed.png
    Example, spot VMs against on-demand ones:
      burla sim spot --both-ways
    Example, a crashed notebook's job resumed with a fix:
      burla sim resume
    """
    try:
        from burla.sim.command import simulate, simulate_both_ways
    except ImportError as error:
        raise click.UsageError(
            f"the simulator needs its extra ({error}): pip install 'burla-cluster[sim]'"
        ) from None
    try:
        if both_ways:
            if plot_out:
                raise click.UsageError("--plot draws one run; leave it out with --both-ways")
            simulate_both_ways(scenario, json_out)
        else:
            simulate(scenario, json_out, plot_out, exit_when_done=True)
    except NotFoundError as error:  # no such scenario: a bad argument, not a missing job
        raise click.BadParameter(str(error), param_hint="SCENARIO") from None
