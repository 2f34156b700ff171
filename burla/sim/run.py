"""Run a scenario: one trio run under a mock clock that jumps to the next deadline as
soon as every task waits, the same timeline for the same seed, and the numbers it made.

Repeatable: every draw comes from generators seeded by the scenario's seed, and trio's
scheduler is seeded too and made to order each batch of ready tasks by when they were
created (trio shuffles them otherwise). Fast: the collector is tuned for the hundreds of
thousands of long-lived objects of a big cluster, and restored afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import trio
import trio.abc
import trio.testing

from burla.core.cost import usd_for
from burla.core.errors import BurlaError
from burla.sim import resumes
from burla.sim.cpu import CpuMeter
from burla.sim.recorder import JobLog
from burla.sim.scenario import Scenario
from burla.sim.simulation import Simulation
from burla.sim.users import PlannedJob

WALL_CHECK_STEPS = 1 << 16


class _Steps(trio.abc.Instrument):
    """Counts task steps (the simulation's events) and stops a run past its wall time."""

    def __init__(self, wall_limit_s: float | None) -> None:
        self.steps = 0
        self.scope: trio.CancelScope | None = None
        self.timed_out = False
        self._deadline = None if wall_limit_s is None else time.perf_counter() + wall_limit_s

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps += 1
        if self.steps % WALL_CHECK_STEPS == 0 and self._past_deadline():
            self.timed_out = True
            if self.scope is not None:
                self.scope.cancel()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.perf_counter() > self._deadline


@contextlib.contextmanager
def _tuned_gc() -> Iterator[None]:
    """No collections during a run: a big cluster is millions of objects that live for
    the whole run, which collections would walk again and again, while what it throws
    away is freed by reference counting (peak memory is the same). What exists before
    is frozen, so that the first collection after is no bigger than usual."""
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


@contextlib.contextmanager
def _repeatable_trio(seed: int) -> Iterator[None]:
    """Seed trio's scheduler and have it sort each batch of runnable tasks by creation
    before its seeded shuffle. Both are private to trio 0.35 (pytest-trio uses the same
    switch under Hypothesis); a trio without them fails here, not silently."""
    run_module = trio._core._run
    if not hasattr(run_module, "_r") or not hasattr(run_module, "_ALLOW_DETERMINISTIC_SCHEDULING"):
        raise BurlaError(
            f"trio {trio.__version__} has no seedable scheduler; the simulator needs trio "
            "0.25-0.35 (pip install 'burla-cluster[sim]')"
        )
    state = run_module._r.getstate()
    allowed = run_module._ALLOW_DETERMINISTIC_SCHEDULING
    run_module._r.seed(seed)
    setattr(run_module, "_ALLOW_DETERMINISTIC_SCHEDULING", True)  # noqa: B010 - Final in trio
    try:
        yield
    finally:
        setattr(run_module, "_ALLOW_DETERMINISTIC_SCHEDULING", allowed)  # noqa: B010
        run_module._r.setstate(state)


def run(
    scenario: Scenario,
    *,
    validate: bool = False,
    wall_limit_s: float | None = None,
    on_report: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Simulate `scenario` and return its report (see `summarize`). With `validate`, the
    services' state machines check their invariants after every step (slow).

    The report is made, and handed to `on_report`, as soon as the simulation is over:
    its `wall_s` ends there. Tearing the simulated cluster down comes after (every task
    of every node is cancelled): for 1,000 nodes that takes seconds more, which a
    command line can skip by exiting from `on_report`."""
    steps = _Steps(wall_limit_s)
    instruments: list[trio.abc.Instrument] = [steps]
    if scenario.service_cpu.measure:
        instruments.append(CpuMeter(scenario.service_cpu.scale))
    reports: list[dict[str, Any]] = []
    started = time.perf_counter()

    def finished(sim: Simulation) -> None:
        shutil.rmtree(sim.world.status_root, ignore_errors=True)
        reports.append(summarize(sim, time.perf_counter() - started, steps.steps))
        if on_report is not None:
            on_report(reports[0])

    async def main(status_root: Path) -> None:
        sim = Simulation(scenario, status_root, validate=validate)
        with trio.CancelScope() as scope:
            steps.scope = scope
            with trio.fail_after(scenario.max_virtual_s):
                await sim.run(functools.partial(finished, sim))

    with (
        tempfile.TemporaryDirectory(prefix="burla-sim-", ignore_cleanup_errors=True) as status_root,
        _tuned_gc(),
        _repeatable_trio(scenario.seed),
    ):
        started = time.perf_counter()
        try:
            trio.run(
                main,
                Path(status_root),
                clock=trio.testing.MockClock(autojump_threshold=0),
                instruments=instruments,
            )
        except trio.TooSlowError:
            raise BurlaError(
                f"scenario {scenario.name!r} did not finish within {scenario.max_virtual_s:g} "
                "virtual seconds (max_virtual_s); its jobs may wait for nodes that never come"
            ) from None
    if steps.timed_out or not reports:
        raise BurlaError(
            f"scenario {scenario.name!r} ran past {wall_limit_s:g} s of wall time and was "
            "stopped; make it smaller or allow more time"
        )
    return reports[0]


def _since(log: JobLog, moment: float | None) -> float | None:
    return None if moment is None else moment - log.arrived


def _at(sim: Simulation, moment: float | None) -> float | None:
    """A moment of the run as seconds since time zero of the report."""
    return None if moment is None else moment - sim.recorder.t0


def _job_report(sim: Simulation, log: JobLog, started: set[int]) -> dict[str, Any]:
    """One call's numbers; `started` are the inputs that started in its job."""
    machines = [m for m in sim.recorder.machines.values() if log.job_id in m.jobs]
    # Standby nodes were up and idle when the job came; the others were started for it
    # (or were still booting then).
    standby = [m for m in machines if m.ready is not None and m.ready <= log.arrived]
    # A canceled job, or one whose function did not load, has inputs that never ran.
    ran = log.state in ("succeeded", "failed") and log.error is None
    missing = log.n_inputs - len(log.results) if ran else 0
    if log.failed_only:  # inputs the job it resumes never ran get no result here
        missing -= log.n_inputs - len(sim.stored.get(str(log.resumes), {}))
    record = sim.records.get(log.job_id, {})
    cost = record.get("cost") or {}
    return {
        "job_id": log.job_id,
        "user": log.user,
        "n_inputs": log.n_inputs,
        "resumes": log.resumes,
        "arrived_s": _at(sim, log.arrived),
        # A call that stopped following its job did not see its end: the job's record did.
        "state": log.state if log.stopped is None else record.get("state"),
        "stopped_following": log.stopped,
        "error": log.error,
        "time_to_first_start_s": _since(log, log.first_start),
        "time_to_all_started_s": _since(log, log.all_started),
        "time_to_first_result_s": _since(log, log.first_result),
        "duration_s": _since(log, log.done),
        "standby_nodes_for_job": len(standby),
        "new_nodes_for_job": len(machines) - len(standby),
        "streams_read": log.streams,
        "results_received": sum(log.results.values()),
        "results_stored": len(sim.stored.get(log.job_id, {})),
        "inputs_run": len(started),
        "inputs_failed": sum(kind != "ok" for kind in sim.stored.get(log.job_id, {}).values()),
        "inputs_reused": len(log.results.keys() - started) if log.resumes else 0,
        "inputs_lost": max(0, missing),
        "inputs_recorded_twice": sum(1 for count in log.results.values() if count > 1),
        "node_seconds": cost.get("node_seconds", 0.0),
        "cost_usd": cost.get("usd", 0.0),
        "cost_basis": cost.get("basis", ""),
        "stopped_over_budget": log.over_budget,
        "failure": sim.records.get(log.job_id, {}).get("failure"),
        "memory": sim.records.get(log.job_id, {}).get("memory"),
    }


def _resume_checks(
    sim: Simulation, calls: list[PlannedJob], started: dict[str, set[int]]
) -> dict[str, int]:
    """The resumed calls' checks, summed (see burla.sim.resumes.check): each resume ran
    exactly the inputs its job had no result for, and a call that followed it to its
    end got every result once."""
    totals = {"ran_again": 0, "not_run": 0, "results_not_whole": 0}
    for call in calls:
        log = sim.recorder.jobs[call.job_id]
        if call.resumes is None or log.state not in ("succeeded", "failed") or log.error:
            continue  # refused (as a ResumeError would be), or its function did not load
        assert call.arrival.resume is not None
        found = resumes.check(
            log,
            call.arrival.resume.failed_only,
            sim.stored.get(call.resumes, {}),
            started.get(call.job_id, set()),
        )
        if log.stopped is not None:  # it canceled the job at a failure: the rest never ran
            found["not_run"] = found["results_not_whole"] = 0
        for name, count in found.items():
            totals[name] += count
    return totals


def _total_usd(amounts: Iterable[float | None]) -> float | None:
    """The sum, or None if any amount has no price."""
    total = 0.0
    for amount in amounts:
        if amount is None:
            return None
        total += amount
    return total


def _machine_cost(sim: Simulation, seconds_by_type: dict[str, float]) -> dict[str, Any]:
    """What every machine's time cost (the cluster's bill: idle standby and boots too),
    at the same prices as the jobs' costs."""
    prices = {
        name: sim.host.main.price(sim.scenario.node_type(name).node_type())
        for name in seconds_by_type
    }
    return {
        "cost_usd": _total_usd(
            None if (price := prices[name].usd_per_hour) is None else usd_for(seconds, price)
            for name, seconds in seconds_by_type.items()
        ),
        "prices": {name: dataclasses.asdict(price) for name, price in prices.items()},
    }


def summarize(sim: Simulation, wall_s: float, steps: int) -> dict[str, Any]:
    """The report: top-level numbers of the first job and the whole run, every job, the
    faults, the invariant checks, and the timeline."""
    recorder, storage = sim.recorder, sim.storage
    end = sim.end
    totals = recorder.totals(end)
    started: dict[str, set[int]] = {}
    for job_id, index in recorder.starts:
        started.setdefault(job_id, set()).add(index)
    calls = sim.users.every_job()
    jobs = [_job_report(sim, recorder.jobs[p.job_id], started.get(p.job_id, set())) for p in calls]
    resumed = _resume_checks(sim, calls, started)
    first = jobs[0] if jobs else {}
    arrivals = [j["arrived_s"] for j in jobs]
    finishes = [j["arrived_s"] + j["duration_s"] for j in jobs if j["duration_s"] is not None]
    samples = recorder.samples
    return {
        "scenario": sim.scenario.name,
        "seed": sim.scenario.seed,
        "cpus_now": totals["cpus_now"],
        "nodes_started": totals["nodes_started"],
        "new_nodes_for_job": first.get("new_nodes_for_job", 0),
        "standby_nodes_for_job": first.get("standby_nodes_for_job", 0),
        "time_to_first_start_s": first.get("time_to_first_start_s"),
        "time_to_first_result_s": first.get("time_to_first_result_s"),
        # A call that stopped following its job never had all its results.
        "time_to_all_results_s": None
        if first.get("stopped_following")
        else first.get("duration_s"),
        "makespan_s": max(finishes) - min(arrivals) if finishes else None,
        "peak_nodes": totals["peak_nodes"],
        "peak_busy_cpus": totals["peak_busy_cpus"],
        "cpu_utilization": totals["cpu_utilization"],
        "node_seconds": totals["node_seconds"],
        **_machine_cost(sim, totals["node_seconds_by_type"]),
        "jobs_node_seconds": sum(j["node_seconds"] for j in jobs),
        "jobs_cost_usd": _total_usd(j["cost_usd"] for j in jobs),
        "inputs_rerun": totals["inputs_rerun"],
        "preemptions": sum(f["kind"] == "preemption" for f in sim.faults),
        "node_losses": sim.host.main.cluster_status()["node_losses"]["counts"],
        "store_failures_injected": storage.faulty_store.injected if storage.faulty_store else 0,
        "blob_failures_injected": storage.faulty_blobs.injected if storage.faulty_blobs else 0,
        "answers_lost": sim.users.answers_lost,
        "store_profile": sim.scenario.store_profile,
        "store_calls": storage.calls.as_json(),
        "store_writes": storage.slow_store.writes if storage.slow_store else 0,
        "store_writes_aborted": storage.slow_store.aborted if storage.slow_store else 0,
        "store_writes_exhausted": storage.slow_store.exhausted if storage.slow_store else 0,
        "store_calls_past_deadline": storage.slow_store.past_deadline if storage.slow_store else 0,
        "blob_writes_refused": storage.slow_blobs.refused if storage.slow_blobs else 0,
        "service_cpu": sim.cpus.as_json(sim.scenario.service_cpu.scale) if sim.cpus else None,
        "standby_restored": sim.standby_restored,
        "standby_restored_at_s": _at(sim, sim.settled_at),
        "virtual_s": end - recorder.t0,
        "wall_s": wall_s,
        "events": steps,
        "events_per_s": steps / wall_s if wall_s else 0.0,
        "jobs": jobs,
        "faults": sim.faults,
        "machines_refused": sim.compute.refused,
        "checks": {
            "inputs_lost": sum(j["inputs_lost"] for j in jobs),
            "inputs_recorded_twice": sum(j["inputs_recorded_twice"] for j in jobs),
            "results_missing_from_store": sum(
                max(0, j["results_received"] - j["results_stored"]) for j in jobs
            ),
            "nodes_on_two_jobs": list(recorder.violations),
            "memory_overcommitted": list(recorder.overcommitted),
            "resumed_inputs_run_again": resumed["ran_again"],
            "resumed_inputs_not_run": resumed["not_run"],
            "resumed_results_not_whole": resumed["results_not_whole"],
            "node_services_exited": sum(f["kind"] == "node_service_exit" for f in sim.faults),
            "main_service_exited": sim.host.exited is not None,
            "standby_restored": sim.standby_restored,
        },
        "timeline": {
            "t": [s.t for s in samples],
            "booting": [s.booting for s in samples],
            "ready": [s.ready for s in samples],
            "busy": [s.busy for s in samples],
            "machines": [s.machines for s in samples],
            "machine_cpus": [s.machine_cpus for s in samples],
            "busy_cpus": [s.busy_cpus for s in samples],
        },
    }
