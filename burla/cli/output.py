"""How `burla` commands answer: tables for people, JSON for scripts, exit codes for both."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

OK = 0
JOB_FAILED = 1
"""The job ran and some input failed (or it was canceled)."""
USAGE = 2
"""Bad arguments, or a request the cluster refused."""
NOT_RUNNING = 3
"""No cluster runs there, or it does not answer."""
NOT_FOUND = 4
"""No such job."""
INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 the job failed; 2 bad arguments or a refused request; "
    "3 no cluster is running or it does not answer; 4 no such job."
)

F = TypeVar("F", bound=Callable[..., Any])


def json_option(function: F) -> F:
    option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    return option(function)


def emit(data: Any, as_json: bool, show: Callable[[], None]) -> None:
    """`data` as JSON for scripts, else what `show` prints for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        show()


PIPE_WIDTH = 1 << 12
"""How wide a table printed to a pipe may be."""


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A table: drawn with lines on a terminal, plain aligned columns in a pipe (as wide
    as they need: nothing is cut for a script to read)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=PIPE_WIDTH)
    drawn = Table(
        *columns,
        title=title,
        box=box.SIMPLE_HEAD if console.is_terminal else None,
        header_style="bold" if console.is_terminal else "",
        show_edge=False,
        pad_edge=False,
    )
    for row in rows:
        drawn.add_row(*("" if value is None else str(value) for value in row))
    console.print(drawn)
