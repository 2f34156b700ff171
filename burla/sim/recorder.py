"""What a simulation saw: busy CPUs as they change, machines as they come and go, each
job's results as its client received them, and samples of node states over time.

Times are virtual seconds since the simulation began; `start_window` marks time zero of
the report (the moment the standby set is up): totals count from there, and reports give
times relative to it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from burla.core.models import NodeState


@dataclass
class MachineLife:
    node_id: str
    node_type: str
    cpus: int
    created: float
    ready: float | None = None
    gone: float | None = None
    jobs: list[str] = field(default_factory=list)
    """Jobs its workers were given, in order."""


@dataclass
class JobLog:
    job_id: str
    user: str
    n_inputs: int
    arrived: float
    submitted: float | None = None
    first_start: float | None = None
    all_started: float | None = None
    """When the last of its inputs started for the first time."""
    started: int = 0
    first_result: float | None = None
    done: float | None = None
    state: str | None = None
    error: str | None = None
    results: Counter[int] = field(default_factory=Counter)
    """How many times the client received a result for each input index."""
    run_id: str | None = None
    """The stream of events the client reads: another after main_service restarts."""
    streams: int = 0
    """How many streams the client read: more than one if the job was taken over."""
    had: frozenset[int] = frozenset()
    """Inputs whose results came before the stream changed: read again, not counted."""
    over_budget: bool = False
    """The cluster stopped it at its max_cost (its client was told)."""
    failed: list[int] = field(default_factory=list)
    """Inputs whose result, as the client received it, is a failure, in that order."""
    stopped: str | None = None
    """Why the client stopped following the job before its end: its process died, or
    (return_exceptions=False) it canceled the job at an input's failure."""
    resumes: str | None = None
    """The job this call resumes (`resume=`)."""
    failed_only: bool = False
    """It resumes only the failed inputs of that job, not those it never ran."""


@dataclass
class Sample:
    t: float
    booting: int
    ready: int
    busy: int
    machines: int
    machine_cpus: int
    busy_cpus: int
    """The most CPUs busy at once since the previous sample: a burst of inputs shorter
    than the sampling interval still shows."""


class Recorder:
    def __init__(self) -> None:
        self.t0 = 0.0
        self.window_open = False
        self.busy_cpus = 0
        self.peak_busy_cpus = 0
        self._peak_since_sample = 0
        self.busy_cpu_s = 0.0
        self._last_change = 0.0
        self.cpus_before_new_node = 0
        """Most CPUs busy at once before the first machine created in the window was up."""
        self.first_new_ready: float | None = None
        self.machines: dict[str, MachineLife] = {}
        self.alive = 0
        self.alive_cpus = 0
        self.peak_machines = 0
        self.starts: Counter[tuple[str, int]] = Counter()
        self.jobs: dict[str, JobLog] = {}
        self.samples: list[Sample] = []
        self.violations: list[str] = []
        self.overcommitted: list[str] = []
        """Times a node's busy workers were held to more memory than it has."""
        self._node_jobs_running: dict[str, Counter[str]] = {}

    def start_window(self, now: float) -> None:
        self.t0 = now
        self.window_open = True
        self.first_new_ready = None
        self.busy_cpu_s = 0.0
        self._last_change = now
        self.peak_busy_cpus = self._peak_since_sample = self.busy_cpus
        self.cpus_before_new_node = self.busy_cpus
        self.peak_machines = self.alive

    # Inputs ------------------------------------------------------------------------------
    def input_started(self, now: float, node_id: str, job_id: str, index: int, cpus: int) -> None:
        self._busy(now, cpus)
        self.starts[(job_id, index)] += 1
        job = self.jobs.get(job_id)
        if job is not None and self.starts[(job_id, index)] == 1:
            job.started += 1
            if job.first_start is None:
                job.first_start = now
            if job.started == job.n_inputs:
                job.all_started = now
        running = self._node_jobs_running.setdefault(node_id, Counter())
        running[job_id] += 1
        if len(running) > 1:
            self.violations.append(f"{node_id} runs inputs of {sorted(running)} at once")

    def input_stopped(self, now: float, node_id: str, job_id: str, cpus: int) -> None:
        self._busy(now, -cpus)
        running = self._node_jobs_running[node_id]
        running[job_id] -= 1
        if not running[job_id]:
            del running[job_id]

    def _busy(self, now: float, delta: int) -> None:
        self.busy_cpu_s += self.busy_cpus * (now - self._last_change)
        self._last_change = now
        self.busy_cpus += delta
        self.peak_busy_cpus = max(self.peak_busy_cpus, self.busy_cpus)
        self._peak_since_sample = max(self._peak_since_sample, self.busy_cpus)
        if self.first_new_ready is None:
            self.cpus_before_new_node = max(self.cpus_before_new_node, self.busy_cpus)

    # Machines ----------------------------------------------------------------------------
    def machine_created(self, now: float, node_id: str, node_type: str, cpus: int) -> None:
        self.machines[node_id] = MachineLife(node_id, node_type, cpus, created=now)
        self.alive += 1
        self.alive_cpus += cpus
        self.peak_machines = max(self.peak_machines, self.alive)

    def machine_ready(self, now: float, node_id: str) -> None:
        life = self.machines[node_id]
        life.ready = now
        if self.window_open and life.created >= self.t0 and self.first_new_ready is None:
            self.first_new_ready = now

    def machine_gone(self, now: float, node_id: str) -> None:
        life = self.machines[node_id]
        if life.gone is None:
            life.gone = now
            self.alive -= 1
            self.alive_cpus -= life.cpus

    def node_got_job(self, node_id: str, job_id: str) -> None:
        jobs = self.machines[node_id].jobs
        if not jobs or jobs[-1] != job_id:
            jobs.append(job_id)

    def take_sample(self, now: float, states: Iterable[NodeState]) -> None:
        """Note how many nodes are in each state (`states`, one per node) now, beside the
        machines and CPUs alive and busy."""
        counts = Counter(states)
        self.samples.append(
            Sample(
                t=now - self.t0,
                booting=counts[NodeState.BOOTING],
                ready=counts[NodeState.READY],
                busy=counts[NodeState.BUSY],
                machines=self.alive,
                machine_cpus=self.alive_cpus,
                busy_cpus=self._peak_since_sample,
            )
        )
        self._peak_since_sample = self.busy_cpus

    # Totals ------------------------------------------------------------------------------
    def totals(self, end: float) -> dict[str, Any]:
        """The window's totals, up to `end`."""
        busy_cpu_s = self.busy_cpu_s + self.busy_cpus * (end - self._last_change)
        node_s = paid_cpu_s = 0.0
        by_type: dict[str, float] = {}
        for life in self.machines.values():
            lived = min(end, life.gone if life.gone is not None else end) - max(
                life.created, self.t0
            )
            if lived > 0:
                node_s += lived
                paid_cpu_s += lived * life.cpus
                by_type[life.node_type] = by_type.get(life.node_type, 0.0) + lived
        started = [m for m in self.machines.values() if m.created >= self.t0]
        reruns = sum(1 for count in self.starts.values() if count > 1)
        return {
            "nodes_started": len(started),
            "peak_nodes": self.peak_machines,
            "peak_busy_cpus": self.peak_busy_cpus,
            "cpus_now": self.cpus_before_new_node,
            "busy_cpu_s": busy_cpu_s,
            "node_seconds": node_s,
            "node_seconds_by_type": by_type,
            "cpu_utilization": busy_cpu_s / paid_cpu_s if paid_cpu_s else 0.0,
            "inputs_rerun": reruns,
        }
