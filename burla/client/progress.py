"""A progress bar on a terminal (counts, rate, ETA); nothing when output is not a TTY."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


class JobProgress:
    def __init__(self, total: int, enabled: bool) -> None:
        self._progress: Progress | None = None
        if enabled and sys.stderr.isatty():
            # rich loads only when a bar is shown: a script's first call starts sooner.
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]burla"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._progress.add_task("burla", total=total, rate="")

    def __enter__(self) -> JobProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, done: int) -> None:
        if self._progress is not None:
            task = self._progress.tasks[0]
            speed = task.speed
            rate = f"{speed:,.0f}/s" if speed else ""
            self._progress.update(self._task, completed=done, rate=rate)

    def print(self, text: str, stream: str) -> None:
        """Lines the function printed, above the bar."""
        target = sys.stdout if stream == "stdout" else sys.stderr
        target.write(text)
        target.flush()
