"""The workloads: the functions every system runs, their inputs, and the CPU loop calibration.

The functions live here, in an importable module, so that every system can pickle them:
by reference (multiprocessing, loky, dask, ray import this module in their workers) or by
value (burla ships the caller's own modules with the function). What each workload times
is said in `benchmarks.pair`; this module only defines what runs.

The loop count of the CPU-bound workload is calibrated once, when this module is first
imported on this machine, so that one call takes about `CPU_TARGET_S`. The count is put
in the environment (`BURLA_BENCH_CPU_LOOPS`), so the pair processes and their workers,
which inherit it, reuse it instead of calibrating again; it is recorded in results.json.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

WORKERS = 2
"""Parallelism of every system in every workload except W4."""

IO_WORKERS = 16
"""Parallelism of every system in W4 (I/O-bound)."""

CPU_TARGET_S = 0.5
CPU_LOOPS_ENV = "BURLA_BENCH_CPU_LOOPS"


def double(x: int) -> int:
    """The trivial task (W1, W2, W3)."""
    return 2 * x


def nap(seconds: float) -> float:
    """The I/O-bound task (W4): sleep, then return the time slept."""
    time.sleep(seconds)
    return seconds


def payload_len(data: bytes) -> int:
    """The big-payload task (W5): the size of the bytes received."""
    return len(data)


def spin(loops: int) -> int:
    """The CPU-bound task (W6): a pure-Python loop that holds the GIL the whole time."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def calibrate(target_s: float = CPU_TARGET_S, probes: int = 7) -> int:
    """How many `spin` loops take about `target_s` on this machine. The fastest of several
    ~0.1 s probes is used: other load on the machine only ever makes a probe slower."""
    loops = 100_000
    while _time_spin(loops) < 0.1:
        loops *= 2
    best = min(_time_spin(loops) for _ in range(probes))
    return max(1, round(loops * target_s / best))


def _time_spin(loops: int) -> float:
    started = time.perf_counter()
    spin(loops)
    return time.perf_counter() - started


def _cpu_loops() -> int:
    inherited = os.environ.get(CPU_LOOPS_ENV)
    if inherited:
        return int(inherited)
    loops = calibrate()
    os.environ[CPU_LOOPS_ENV] = str(loops)
    return loops


CPU_LOOPS = _cpu_loops()
"""`spin` loops for one ~0.5 s call, calibrated at first import (see the module docstring)."""


@dataclass(frozen=True)
class Workload:
    """One row of the results table."""

    name: str
    title: str
    workers: int
    unit: str
    """How the table shows the median: "s", or "ms" for the latency workload."""
    ideal_s: float | None = None
    burla_only: bool = False
    """Only burla has something to measure; peers are reported as "n/a"."""


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("W1", "throughput: 10,000 trivial inputs, warm", WORKERS, "s"),
        Workload("W2", "warm latency: one input (median of 50 calls)", WORKERS, "ms"),
        Workload("W3_cold", "cold start: fresh process to first result", WORKERS, "s"),
        Workload("W3_up", "fresh process to first result, cluster up", WORKERS, "s", None, True),
        Workload("W4", "I/O-bound: 400 x 50 ms sleeps, 16 workers", IO_WORKERS, "s", 1.25),
        Workload("W5", "big payloads: 50 x 20 MB inputs", WORKERS, "s"),
        Workload("W6", "CPU-bound: 8 x ~0.5 s pure-Python loops", WORKERS, "s", 2.0),
    )
}

THROUGHPUT_INPUTS = 10_000
LATENCY_CALLS = 50
IO_INPUTS = 400
IO_SLEEP_S = 0.05
PAYLOAD_INPUTS = 50
PAYLOAD_BYTES = 20 * 2**20
CPU_INPUTS = 8
