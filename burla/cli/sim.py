"""`burla sim`: a simulated cluster at cloud scale, under virtual time."""

from __future__ import annotations

import click

from burla.core.errors import NotFoundError


@click.command("sim")
@click.argument("scenario")
@click.option("--json", "json_out", metavar="PATH", help="Write the report as JSON here.")
@click.option("--plot", "plot_out", metavar="PATH", help="Write the timeline plot (PNG) here.")
def sim(scenario: str, json_out: str | None, plot_out: str | None) -> None:
    """Simulate a cluster: the real main_service and node_services under virtual time.

    SCENARIO is a shipped one (seed, cold, burst, custom-image, node-loss, flaky-store,
    main-restart, headline, scale, ten-thousand, million) or the path of a scenario file
    (.yaml or .json). Prints a summary; the JSON holds every number, each job and the
    timeline (`--json -` prints it instead of the summary). Most runs take seconds of
    wall time; ten-thousand and million take minutes.

    \b
    Example, the seed's 5 x 96-CPU standby and 1,000 inputs:
      burla sim seed --json seed.json --plot seed.png
    """
    try:
        from burla.sim.command import simulate
    except ImportError as error:
        raise click.UsageError(
            f"the simulator needs its extra ({error}): pip install 'burla-cluster[sim]'"
        ) from None
    try:
        simulate(scenario, json_out, plot_out, exit_when_done=True)
    except NotFoundError as error:  # no such scenario: a bad argument, not a missing job
        raise click.BadParameter(str(error), param_hint="SCENARIO") from None
