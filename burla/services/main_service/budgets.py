"""Jobs kept to their max_cost: each is stopped once its nodes have come to cost it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from burla.core.clock import Clock
from burla.services.main_service.jobs import JobRun

CHECK_S = 1.0
"""How often jobs with a max_cost are looked at, at most."""
LEAST_PAUSE_S = 0.01


class Budgets:
    def __init__(self, clock: Clock, stop: Callable[[JobRun], Awaitable[None]]) -> None:
        """`stop` cancels a job over its max_cost, saying why."""
        self.clock = clock
        self._stop = stop
        self._capped: dict[str, JobRun] = {}
        """Running jobs with a max_cost."""

    def watch(self, run: JobRun) -> None:
        """Keep the job to its max_cost, if it has one."""
        if run.spec.max_cost is not None:
            self._capped[run.spec.job_id] = run

    async def keep(self) -> None:
        """Stop each job whose nodes came to cost its max_cost. Looks again when the next
        one would at the nodes they hold now, and at least every CHECK_S (a node that
        joins a job makes it cost more per hour)."""
        while True:
            now, pause = self.clock.now(), CHECK_S
            for job_id, run in list(self._capped.items()):
                if run.state.finished:
                    del self._capped[job_id]
                    continue
                assert run.spec.max_cost is not None
                until = run.node_time.seconds_until(run.spec.max_cost, now)
                if until is not None and until <= 0:
                    await self._stop(run)
                elif until is not None:
                    pause = min(pause, until)
            await anyio.sleep(max(pause, LEAST_PAUSE_S))
