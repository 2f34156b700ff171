"""CPU each process of a local cluster spends per input and per job:
`python -m benchmarks.service_cpu [OUT.json] [--cpus 2] [--inputs 10000] [--jobs 5]`.

The real services (main_service, one node_service, its workers) run as `make demo` runs
them, in a cluster of their own under a temporary directory. Two shapes of job are timed,
warm: `--jobs` jobs of `--inputs` trivial inputs (the throughput of W1), and
`--calls` jobs of one input (the latency of W2). Each process's CPU (user + system, from
/proc) over those jobs is divided by what they did; the main line is inputs per second
per main_service CPU: how many inputs one main_service could carry if nothing else
limited it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def double(x: int) -> int:
    return 2 * x


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def cluster_processes(main_pid: int) -> dict[str, list[int]]:
    """main_service, its node_services and their workers, by role."""
    nodes = children(main_pid)
    workers = [w for node in nodes for w in children(node)]
    return {"main_service": [main_pid], "node_service": nodes, "workers": workers}


def measured(processes: dict[str, list[int]], run: Callable[[], None]) -> dict[str, float]:
    """CPU seconds each role (and this client) spent while `run` ran, and the wall time."""
    before = {role: sum(cpu_s(p) for p in pids) for role, pids in processes.items()}
    client_before, started = time.process_time(), time.perf_counter()
    run()
    wall = time.perf_counter() - started
    spent = {role: sum(cpu_s(p) for p in pids) - before[role] for role, pids in processes.items()}
    spent["client"] = time.process_time() - client_before
    spent["wall"] = wall
    return spent


def per(spent: dict[str, float], count: int) -> dict[str, float]:
    """Microseconds per input (or per job)."""
    return {role: round(seconds / count * 1e6, 1) for role, seconds in spent.items()}


def measure(cpus: int, n_inputs: int, jobs: int, calls: int) -> dict[str, Any]:
    from burla import remote_parallel_map
    from burla.client import local

    with tempfile.TemporaryDirectory(prefix="burla-cpu-") as root:
        os.environ["BURLA_LOCAL_DIR"] = root
        os.environ["BURLA_LOCAL_CPUS"] = str(cpus)
        try:
            remote_parallel_map(double, list(range(4 * cpus)), spinner=False)  # warm
            cluster = local.read(Path(root))
            assert cluster is not None
            processes = cluster_processes(cluster.pid)
            inputs = list(range(n_inputs))

            def throughput() -> None:
                for _ in range(jobs):
                    results = remote_parallel_map(double, inputs, spinner=False)
                    assert results == [2 * x for x in inputs]

            def latency() -> None:
                for n in range(calls):
                    assert remote_parallel_map(double, [n], spinner=False) == [2 * n]

            big = measured(processes, throughput)
            small = measured(processes, latency)
        finally:
            local.stop(Path(root))
    main_s = big["main_service"]
    return {
        "inputs_per_s_per_main_cpu": round(jobs * n_inputs / main_s) if main_s else None,
        "throughput": {
            "jobs": jobs,
            "inputs_per_job": n_inputs,
            "seconds_per_job": round(big["wall"] / jobs, 4),
            "cpu_us_per_input": per(big, jobs * n_inputs),
        },
        "latency": {
            "jobs": calls,
            "ms_per_job": round(small["wall"] / calls * 1e3, 3),
            "cpu_us_per_job": per(small, calls),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    numbers = measure(args.cpus, args.inputs, args.jobs, args.calls)
    numbers["host"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }
    if args.out is not None:
        args.out.write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers, indent=2))
    per_main_cpu = numbers["inputs_per_s_per_main_cpu"]
    print(
        f"{per_main_cpu or 'too few'} inputs/s per main_service CPU; "
        f"main_service CPU per input {numbers['throughput']['cpu_us_per_input']['main_service']} us"
    )


if __name__ == "__main__":
    main()
