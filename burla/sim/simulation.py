"""One simulated cluster: the real main_service and node_services on memory backends,
simulated machines and containers, and simulated users, all in one trio run.

Users submit jobs and follow their results through main_service's real HTTP app (see
burla.sim.users). main_service reaches each node over an in-memory connection served by
the node's real MainLink (burla.sim.nodes); each node reaches its workers over in-memory
streams (burla.sim.workers). Nothing sleeps for real: every wait is a deadline on trio's
mock clock. This module wires them together and drives the scenario: arrivals, faults,
preemptions of spot machines, samples, and the wait for the standby set to be whole again.

A spot machine's preemption is drawn when it comes up: after a time from an exponential
distribution of its type's `preemptions_per_hour`, from a generator of its own seeded by
the scenario's seed (the same machines are preempted at the same moments in every run,
and scenarios without spot machines draw nothing from it).
"""

from __future__ import annotations

import functools
import random
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from burla.core.errors import BackendError
from burla.core.models import NodeState
from burla.services.cluster_keys import node_secret
from burla.services.store_keys import job_key
from burla.sim.clock import Timers, VirtualClock
from burla.sim.compute import SimComputeProvider, SimMachine
from burla.sim.cpu import CpuLedger
from burla.sim.main_host import MainHost
from burla.sim.nodes import SimNodes
from burla.sim.profiles import SAME_REGION
from burla.sim.recorder import Recorder
from burla.sim.scenario import Fault, Scenario
from burla.sim.storage import SimStorage
from burla.sim.users import SimUsers
from burla.sim.workers import WorkerWorld

SETTLE_CHECK_S = 1.0


class Simulation:
    def __init__(self, scenario: Scenario, status_root: Path, *, validate: bool = False) -> None:
        self.scenario = scenario
        self.rng = random.Random(f"{scenario.seed}:cloud")
        self.clock = VirtualClock()
        self.timers = Timers()
        self.recorder = Recorder()
        self.world = WorkerWorld(
            clock=self.clock,
            timers=self.timers,
            recorder=self.recorder,
            images={i.image: i for i in scenario.images},
            rng=random.Random(f"{scenario.seed}:containers"),
            status_root=status_root,
        )
        self.cpus = CpuLedger() if scenario.service_cpu.measure else None
        token = secrets.token_hex(16)
        self.storage = SimStorage(scenario, self.clock, self.timers)
        self.nodes = SimNodes(
            self.world,
            self.storage,
            self.clock,
            self.recorder,
            secret=node_secret(token),
            link_delay=_link_delay(scenario),
            booted=lambda node_id: self.host.node_booted(node_id),
            exited=self._node_service_exited,
            cpus=self.cpus,
        )
        self.compute = SimComputeProvider(
            node_types={t.name: t for t in scenario.node_types},
            clock=self.clock,
            timers=self.timers,
            recorder=self.recorder,
            rng=self.rng,
            on_up=self._machine_up,
            on_down=self.nodes.machine_down,
            quota_cpus=scenario.quota_cpus,
        )
        self.host = MainHost(
            scenario,
            self.storage,
            self.compute,
            self.clock,
            token,
            validate,
            self.nodes.dial,
            self.cpus.main if self.cpus else None,
        )
        self.users = SimUsers(
            scenario,
            self.host,
            self.storage,
            self.world,
            self.recorder,
            self.clock,
            self.rng,
            token,
        )
        self.preemptions = random.Random(f"{scenario.seed}:preemptions")
        self.faults: list[dict[str, Any]] = []
        self.standby_restored = False
        self.settled_at: float | None = None
        self.end = 0.0
        self.stored: dict[str, dict[int, str]] = {}
        """The kind of each result each job has in the Store at the end, by index."""
        self.records: dict[str, dict[str, Any]] = {}
        """Each job's record in the Store at the end (none for a job refused)."""
        self._tasks: TaskGroup | None = None

    async def run(self, finished: Callable[[], None]) -> None:
        """Run the scenario; call `finished` once everything is recorded, then stop."""
        async with self.users.http, anyio.create_task_group() as tasks:
            self._tasks = self.nodes.tasks = tasks
            tasks.start_soon(self.timers.run)
            await tasks.start(self.host.run)
            if self.scenario.start_in_standby and self.scenario.standby:
                boot_timeout_s = self.host.main.cluster.config.boot_timeout_s
                await self._until(self._in_standby, boot_timeout_s * 2)
            self._start_window(tasks)
            if self.users.planned:
                await _first_of(self.users.all_done, self.host.exit)
            if self.host.exited is None:
                within_s = self.scenario.settle_s
                self.standby_restored = await self._until(self._in_standby, within_s)
            else:
                at, error = self.host.exited
                exit = {"at_s": at - self.recorder.t0, "kind": "main_service_exit"}
                self.faults.append({**exit, "targets": ["main_service"], "error": str(error)})
            if self.standby_restored:
                self.settled_at = self.clock.elapsed()
            self.end = self.clock.elapsed()
            self._take_sample()
            for job in self.users.every_job():
                self.stored[job.job_id] = await self.storage.results_stored(job.job_id)
                record = await self.storage.store.get(job_key(job.job_id))
                if record is not None:
                    self.records[job.job_id] = record.data
            finished()
            tasks.cancel_scope.cancel()

    def _start_window(self, tasks: TaskGroup) -> None:
        """Time zero of the report: the jobs and faults are timed from now."""
        t0 = self.clock.elapsed()
        self.recorder.start_window(t0)
        self.storage.calls.clear()
        if self.storage.slow_store is not None:
            self.storage.slow_store.clear_counts()
        if self.cpus is not None:
            self.cpus.start_window()
        for job in self.users.planned:
            self.timers.at(t0 + job.at_s, functools.partial(tasks.start_soon, self.users.user, job))
        for fault in self.scenario.faults:
            self.timers.at(t0 + fault.at_s, functools.partial(self._fault, fault))
        self._sample()

    async def _until(self, condition: Any, within_s: float) -> bool:
        """Wait until `condition()` holds (checked every second); False if it never did."""
        with anyio.move_on_after(within_s):
            while not condition():  # noqa: ASYNC110 - the cluster's state has no event
                await anyio.sleep(SETTLE_CHECK_S)
            return True
        return False

    def _in_standby(self) -> bool:
        """No job runs (one whose caller stopped following it runs on to its end), no
        node boots, every standby group is idle and whole, no machine is extra."""
        if self.host.main.job_driver.running():
            return False
        cluster = self.host.main.cluster
        if any(n.state is NodeState.BOOTING for n in cluster.nodes.values()):
            return False
        for group in cluster.config.standby.nodes:
            if cluster.idle(group.node_type.name) != group.count:
                return False
        return self.recorder.alive == len(cluster.nodes)

    def _sample(self) -> None:
        self._take_sample()
        self.timers.after(self.scenario.sample_s or 1.0, self._sample)

    def _take_sample(self) -> None:
        nodes = self.host.main.cluster.nodes.values()
        self.recorder.take_sample(self.clock.elapsed(), (node.state for node in nodes))

    def _fault(self, fault: Fault) -> None:
        now = self.clock.elapsed() - self.recorder.t0
        if fault.kind == "main_restart":
            assert self._tasks is not None
            self._tasks.start_soon(self.host.restart, fault.down_s, self._tasks)
            targets = ["main_service"]
        elif fault.kind == "node_death":
            targets = self._nodes_to_kill(fault)
            for node_id in targets:
                self.compute.fail(node_id)
        else:
            by_id = self.nodes.by_id
            running = [
                (node_id, name)
                for node_id in sorted(by_id)
                for name in by_id[node_id].runtime.busy_workers()
            ]
            chosen = self.rng.sample(running, min(fault.count, len(running)))
            for node_id, name in chosen:
                by_id[node_id].runtime.crash(name)
            targets = [name for _, name in chosen]
        self.faults.append({"at_s": now, "kind": fault.kind, "targets": sorted(targets)})

    def _machine_up(self, machine: SimMachine) -> None:
        """A machine is up: its node_service starts, and a spot one's preemption is drawn."""
        self.nodes.machine_up(machine)
        rate = self.scenario.node_type(machine.boot.node_type.name).preemptions_per_hour
        if rate > 0:
            after_s = self.preemptions.expovariate(rate / 3600)
            self.timers.after(after_s, functools.partial(self._preempt, machine.boot.node_id))

    def _preempt(self, node_id: str) -> None:
        if self.compute.preempt(node_id):
            now = self.clock.elapsed() - self.recorder.t0
            self.faults.append({"at_s": now, "kind": "preemption", "targets": [node_id]})

    def _node_service_exited(self, node_id: str, error: BackendError) -> None:
        """A node_service whose Store or blob store calls kept failing past its retries
        ends, as the process would on its machine: the machine is lost to the cluster."""
        now = self.clock.elapsed() - self.recorder.t0
        fault = {"at_s": now, "kind": "node_service_exit", "targets": [node_id]}
        self.faults.append({**fault, "error": str(error)})
        self.compute.fail(node_id)

    def _nodes_to_kill(self, fault: Fault) -> list[str]:
        """The node a node_death fault names, or `count` busy nodes drawn at random."""
        if fault.node is not None:
            return [fault.node] if fault.node in self.nodes.by_id else []
        busy = sorted(
            n.node_id
            for n in self.host.main.cluster.nodes.values()
            if n.state is NodeState.BUSY and n.node_id in self.nodes.by_id
        )
        return self.rng.sample(busy, min(fault.count, len(busy)))


def _link_delay(scenario: Scenario) -> Callable[[], float] | None:
    """What each message between main_service and a node takes, drawn when the scenario
    says so."""
    delay = scenario.link_delay_s
    if delay is None and scenario.network == "same-region":
        delay = SAME_REGION.link
    if delay is None:
        return None
    return functools.partial(delay.draw, random.Random(f"{scenario.seed}:links"))


async def _first_of(*events: anyio.Event) -> None:
    """Wait until one of `events` is set."""
    async with anyio.create_task_group() as waits:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            waits.cancel_scope.cancel()

        for event in events:
            waits.start_soon(wait, event)
