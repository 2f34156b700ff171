"""The services' own CPU, charged in virtual time (scenario `service_cpu`).

The real services run in the simulator, so the CPU each of their task steps takes is
measured (the thread's CPU time around the step) and, scaled to the reference machine,
queued on the service's one CPU: main_service and each node_service compute one thing at a
time. A service's output waits until its CPU has done the work queued before it: its
Store and blob store calls, its frames, its HTTP answers. A service that cannot keep up
shows as a queue, and its results come later.

A task step counts for the service whose task it is: tasks inherit SERVICE from the task
that started them, and the simulator sets it where a service starts, and where one
service's code runs in another's task (main_service's HTTP app, in the user's task).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator
from typing import Any

import trio
import trio.abc

SERVICE: contextvars.ContextVar[ServiceCpu | None] = contextvars.ContextVar(
    "burla_sim_service", default=None
)
"""The service the running code belongs to; None for the simulator's own."""


class ServiceCpu:
    """One service's CPU: the work it was charged, and until when it is busy."""

    __slots__ = ("busy_s", "busy_until", "longest_queue_s", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.busy_until = 0.0
        self.busy_s = 0.0
        self.longest_queue_s = 0.0
        """The most work it had queued at once, in seconds of its CPU."""

    def start_window(self) -> None:
        """Count from now on (work queued before still holds its output)."""
        self.busy_s = self.longest_queue_s = 0.0

    def charge(self, cpu_s: float, now: float) -> None:
        self.busy_until = max(self.busy_until, now) + cpu_s
        self.busy_s += cpu_s
        self.longest_queue_s = max(self.longest_queue_s, self.busy_until - now)


@contextlib.contextmanager
def charged_to(service: ServiceCpu | None) -> Iterator[None]:
    """Count the steps of the code inside (in whatever task runs it) for `service`."""
    if service is None:
        yield
        return
    token = SERVICE.set(service)
    try:
        yield
    finally:
        SERVICE.reset(token)


def ready_at() -> float:
    """When the running service's output may leave: once its CPU has done its work."""
    service = SERVICE.get()
    return 0.0 if service is None else service.busy_until


async def wait_for_cpu() -> None:
    """Hold the running service's output until its CPU is done with the work before it."""
    due = ready_at()
    if due > trio.current_time():
        await trio.sleep_until(due)


class CpuMeter(trio.abc.Instrument):
    """Measures each task step's CPU and charges it, times `scale`, to its service."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._started = 0.0
        self._service: ServiceCpu | None = None

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._service = task.context.get(SERVICE)
        self._started = time.thread_time()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        cpu_s = time.thread_time() - self._started
        # A step that entered or left a service's code in another's task counts for it.
        service = task.context.get(SERVICE) or self._service
        if service is not None:
            service.charge(cpu_s * self.scale, trio.current_time())


class CpuLedger:
    """Every service's CPU of one simulation, by name."""

    def __init__(self) -> None:
        self.main = ServiceCpu("main_service")
        self.nodes: dict[str, ServiceCpu] = {}

    def start_window(self) -> None:
        for cpu in (self.main, *self.nodes.values()):
            cpu.start_window()

    def node(self, node_id: str) -> ServiceCpu:
        cpu = self.nodes.get(node_id)
        if cpu is None:
            cpu = self.nodes[node_id] = ServiceCpu(node_id)
        return cpu

    def as_json(self, scale: float) -> dict[str, Any]:
        nodes = list(self.nodes.values())
        busiest = max(nodes, key=lambda cpu: cpu.busy_s, default=None)
        return {
            "scale": scale,
            "main_service": {
                "busy_s": self.main.busy_s,
                "longest_queue_s": self.main.longest_queue_s,
            },
            "nodes": {
                "busy_s": sum(cpu.busy_s for cpu in nodes),
                "busiest_node": busiest.name if busiest else None,
                "busiest_node_busy_s": busiest.busy_s if busiest else 0.0,
                "longest_queue_s": max((cpu.longest_queue_s for cpu in nodes), default=0.0),
            },
        }
