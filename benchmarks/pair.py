"""Measure one system on one workload: `python -m benchmarks.pair SYSTEM WORKLOAD --repeat N`.

Prints one JSON line: the repetitions' times in seconds, their median, min and max, and a
status (ok, not-installed, n/a, failed with the error). The runner starts one of these per
(system, workload) pair, each in a fresh interpreter. Every measure below says in its
docstring exactly what is timed. Whatever a measure starts, it stops before returning.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import workloads as w
from benchmarks.systems import SYSTEMS, Pool, SystemNotInstalled, ensure_installed, open_pool

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 240.0
"""How long one cold-start child may take before its repetition fails."""


class WrongResult(Exception):
    """A system returned something other than what the function computes."""


class Stopwatch:
    """Times the measured sections; with a profile path, profiles them too (client side)."""

    def __init__(self, profile: Path | None) -> None:
        self.profile = profile
        self.profiler: Any = None
        if profile is not None:
            from pyinstrument import Profiler

            self.profiler = Profiler()

    def time(self, run: Callable[[], Any]) -> tuple[float, Any]:
        """Seconds `run` took (perf_counter), and what it returned."""
        if self.profiler is not None:
            self.profiler.start()
        started = time.perf_counter()
        try:
            value = run()
        finally:
            seconds = time.perf_counter() - started
            if self.profiler is not None:
                self.profiler.stop()
        return seconds, value

    def save(self) -> None:
        if self.profiler is not None and self.profiler.last_session is not None:
            assert self.profile is not None
            self.profile.parent.mkdir(parents=True, exist_ok=True)
            self.profile.write_text(self.profiler.output_html())


Measured = tuple[list[float], dict[str, Any]]
"""Seconds per repetition, and extra facts for results.json."""

Measure = Callable[[str, int, Stopwatch], Measured]
"""(system, repeat, stopwatch) -> what was measured."""


@contextmanager
def warm_pool(system: str, workers: int) -> Iterator[Pool]:
    """The system opened with `workers` workers and warmed by one untimed map of 2 inputs;
    closed (its processes stopped) on the way out."""
    pool = open_pool(system, workers)
    try:
        check(pool.map(w.double, [0, 1]), [0, 2])
        yield pool
    finally:
        pool.close()


def check(got: Sequence[Any], expected: Sequence[Any]) -> None:
    if list(got) != list(expected):
        shown = repr(list(got)[:5])
        raise WrongResult(
            f"expected {len(expected)} results like {list(expected)[:5]!r}, got {shown}"
        )


def timed_maps(
    system: str,
    workers: int,
    function: Callable[[Any], Any],
    inputs: Callable[[], list[Any]],
    expected: Sequence[Any],
    repeat: int,
    watch: Stopwatch,
) -> list[float]:
    """On a warm pool (see `warm_pool`): build the inputs (untimed), then `repeat` times time
    one `map` of `function` over them, from the call until the whole list of results is
    back in this process. Opening, warming and closing the pool are not timed."""
    with warm_pool(system, workers) as pool:
        values = inputs()
        seconds = []
        for _ in range(repeat):
            took, results = watch.time(lambda: pool.map(function, values))
            check(results, expected)
            seconds.append(took)
        return seconds


def measure_throughput(system: str, repeat: int, watch: Stopwatch) -> Measured:
    """W1: one map of `double` over 10,000 ints on a warm pool of 2 workers, timed from the
    call until all 10,000 results are back (`timed_maps`)."""
    inputs = list(range(w.THROUGHPUT_INPUTS))
    expected = [2 * x for x in inputs]
    return timed_maps(system, w.WORKERS, w.double, lambda: inputs, expected, repeat, watch), {}


def measure_latency(system: str, repeat: int, watch: Stopwatch) -> Measured:
    """W2: on a warm pool of 2 workers, each repetition makes 50 one-input maps of `double`,
    each timed from the call until its one result is back; the repetition's value is the
    median of its 50 calls. Opening, warming and closing the pool are not timed."""
    seconds = []
    all_calls: list[list[float]] = []
    with warm_pool(system, w.WORKERS) as pool:
        for _ in range(repeat):
            calls = []
            for n in range(w.LATENCY_CALLS):
                took, results = watch.time(lambda n=n: pool.map(w.double, [n]))
                check(results, [2 * n])
                calls.append(took)
            all_calls.append(calls)
            seconds.append(statistics.median(calls))
    return seconds, {"calls_s": all_calls}


def measure_io(system: str, repeat: int, watch: Stopwatch) -> Measured:
    """W4: one map of `nap` (time.sleep) over 400 x 0.05 s on a warm pool of 16 workers,
    timed from the call until all 400 results are back (`timed_maps`); ideal 1.25 s."""
    inputs = [w.IO_SLEEP_S] * w.IO_INPUTS
    return timed_maps(system, w.IO_WORKERS, w.nap, lambda: inputs, inputs, repeat, watch), {}


def measure_payloads(system: str, repeat: int, watch: Stopwatch) -> Measured:
    """W5: one map of `payload_len` over 50 distinct 20 MB `bytes` on a warm pool of 2
    workers, timed from the call until the 50 lengths are back, so sending the 1 GB of
    inputs (pickling, copying, any object store) is inside the time (`timed_maps`). The
    inputs are built before the clock starts."""

    def inputs() -> list[bytes]:
        return [bytes([n]) * w.PAYLOAD_BYTES for n in range(w.PAYLOAD_INPUTS)]

    expected = [w.PAYLOAD_BYTES] * w.PAYLOAD_INPUTS
    return timed_maps(system, w.WORKERS, w.payload_len, inputs, expected, repeat, watch), {}


def measure_cpu(system: str, repeat: int, watch: Stopwatch) -> Measured:
    """W6: one map of `spin` over 8 x CPU_LOOPS (each call ~0.5 s of pure Python, calibrated
    on this machine) on a warm pool of 2 workers, timed from the call until the 8 results
    are back (`timed_maps`); ideal 8 x 0.5 s / 2 = 2.0 s."""
    inputs = [w.CPU_LOOPS] * w.CPU_INPUTS
    expected = [w.spin(w.CPU_LOOPS)] * w.CPU_INPUTS
    seconds = timed_maps(system, w.WORKERS, w.spin, lambda: inputs, expected, repeat, watch)
    return seconds, {"cpu_loops": w.CPU_LOOPS}


def measure_cold(system: str, repeat: int, watch: Stopwatch) -> Measured:
    """W3_cold: each repetition launches a fresh interpreter (`python -m benchmarks.cold`)
    with nothing of the system running: for burla a new, empty BURLA_LOCAL_DIR, so that
    its remote_parallel_map call starts the local cluster (BURLA_LOCAL_CPUS=2); for a peer,
    the child creates its pool of 2 workers. The time runs from just before this process
    spawns the child (time.time(), passed in argv) to the moment the child holds the first
    result: interpreter start, imports, pool or cluster start-up and one map of one input.
    The child's shutdown (pool closed, burla's cluster stopped) is not timed."""
    base = burla_base()
    seconds = []
    for n in range(repeat):
        root = base / f"cold-{n}"
        try:
            seconds.append(run_cold_child(system, root, leave_running=False))
        finally:
            stop_burla(system, root)
    return seconds, {"timed_from": "just before spawning the child interpreter"}


def measure_up(system: str, repeat: int, watch: Stopwatch) -> Measured:
    """W3_up (burla only): this process starts the local cluster (BURLA_LOCAL_CPUS=2) and runs
    one untimed map of 2 inputs on it; then each repetition launches a fresh interpreter
    that calls remote_parallel_map on one input, timed as in W3_cold: from just before
    spawning the child to the moment it holds the result. The cluster is stopped at the
    end (not timed)."""
    root = burla_base() / "up"
    os.environ["BURLA_LOCAL_DIR"] = str(root)
    with warm_pool(system, w.WORKERS):
        seconds = [run_cold_child(system, root, leave_running=True) for _ in range(repeat)]
    return seconds, {"timed_from": "just before spawning the child interpreter"}


def burla_base() -> Path:
    """Where burla's local clusters of this pair keep their state (see `main`)."""
    return Path(os.environ["BURLA_LOCAL_DIR"])


@contextmanager
def own_burla_dir() -> Iterator[None]:
    """A BURLA_LOCAL_DIR for this pair: the one the runner gave, else a temporary one that
    is removed at the end. Never the user's own ~/.burla/local."""
    if os.environ.get("BURLA_LOCAL_DIR"):
        yield
        return
    root = tempfile.mkdtemp(prefix="burla-bench-")
    os.environ["BURLA_LOCAL_DIR"] = root
    try:
        yield
    finally:
        shutil.rmtree(root, ignore_errors=True)


def stop_burla(system: str, root: Path) -> None:
    if system == "burla":
        from burla.client import local

        local.stop(root)


def run_cold_child(system: str, root: Path, *, leave_running: bool) -> float:
    """Seconds from just before spawning `python -m benchmarks.cold` to its first result."""
    env = dict(os.environ, BURLA_LOCAL_DIR=str(root), BURLA_LOCAL_CPUS=str(w.WORKERS))
    argv = [sys.executable, "-m", "benchmarks.cold", system, str(w.WORKERS)]
    if leave_running:
        argv.append("--leave-running")
    started = time.time()
    done = subprocess.run(
        [*argv, repr(started)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the cold-start child failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    return float(last_json_line(done.stdout)["elapsed_s"])


def last_json_line(text: str) -> dict[str, Any]:
    """The last line of `text` that is a JSON object (systems may print lines of their own)."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError(f"no JSON line in the output: {text[-500:]!r}")


MEASURES: dict[str, Measure] = {
    "W1": measure_throughput,
    "W2": measure_latency,
    "W3_cold": measure_cold,
    "W3_up": measure_up,
    "W4": measure_io,
    "W5": measure_payloads,
    "W6": measure_cpu,
}


def run_pair(
    system: str, workload: str, repeat: int, profile: Path | None = None
) -> dict[str, Any]:
    """The result of one pair, as the runner records it."""
    spec = w.WORKLOADS[workload]
    result: dict[str, Any] = {
        "system": system,
        "workload": workload,
        "workers": spec.workers,
        "repeat": repeat,
        "status": "ok",
    }
    try:
        ensure_installed(system)
    except SystemNotInstalled as error:
        return {**result, "status": "not-installed", "error": str(error)}
    if spec.burla_only and system != "burla":
        reason = "here peers start their pool in the process that uses it: see W3_cold"
        return {**result, "status": "n/a", "error": reason}
    watch = Stopwatch(profile)
    try:
        seconds, extra = MEASURES[workload](system, repeat, watch)
    except Exception as error:
        return {
            **result,
            "status": "failed",
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc()[-4000:],
        }
    finally:
        watch.save()
    return {
        **result,
        "times_s": seconds,
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "extra": extra,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pair", description=__doc__)
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("workload", choices=sorted(w.WORKLOADS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="write a pyinstrument HTML profile here")
    args = parser.parse_args(argv)
    os.environ.setdefault("BURLA_LOCAL_IDLE_S", "600")  # a leaked cluster stops itself
    with own_burla_dir():
        result = run_pair(args.system, args.workload, args.repeat, args.profile)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
