"""The systems compared, each opened by name as a warm-able pool with `map` and `close`.

Optional packages (joblib, dask, ray) are imported only when their system is opened;
a missing one raises `SystemNotInstalled`, which the results report as "not installed".
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

INSTALL_HINT = "pip install -e '.[bench]'"
SCRATCH_ENV = "BURLA_BENCH_SCRATCH"
"""A directory for a pair's temporary files, removed by the runner after the pair."""

REQUIRED_MODULE: dict[str, str | None] = {
    "burla": "burla",
    "mp_fork": None,
    "mp_spawn": None,
    "ppe": None,
    "joblib": "joblib",
    "dask": "distributed",
    "ray": "ray",
}
"""Every system, in table order, and the module it cannot run without (None: stdlib)."""

SYSTEMS = tuple(REQUIRED_MODULE)
PEERS = tuple(name for name in SYSTEMS if name != "burla")


class SystemNotInstalled(Exception):
    """A system's package is not importable here."""


class Pool(Protocol):
    """A system ready to run functions over inputs, on `workers` worker processes."""

    def map(self, function: Callable[[Any], Any], inputs: Sequence[Any]) -> list[Any]: ...

    def close(self) -> None: ...


def ensure_installed(system: str) -> None:
    if system not in REQUIRED_MODULE:
        raise ValueError(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}")
    module = REQUIRED_MODULE[system]
    if module is not None and importlib.util.find_spec(module) is None:
        raise SystemNotInstalled(f"{module} is not installed; run `{INSTALL_HINT}`")


def open_pool(system: str, workers: int) -> Pool:
    """The system with `workers` workers (started lazily by some; warm it with a tiny map)."""
    ensure_installed(system)
    return _OPENERS[system](workers)


class BurlaPool:
    """remote_parallel_map on burla's embedded local cluster, in its own BURLA_LOCAL_DIR.

    The directory is $BURLA_LOCAL_DIR when the caller set one (every pair has one of its
    own), else a new temporary directory, removed again on close. The cluster starts on
    the first map, with BURLA_LOCAL_CPUS=workers; close stops it.
    """

    def __init__(self, workers: int) -> None:
        given = os.environ.get("BURLA_LOCAL_DIR")
        self.owns_root = not given
        self.root = Path(given or tempfile.mkdtemp(prefix="burla-bench-"))
        os.environ["BURLA_LOCAL_DIR"] = str(self.root)
        os.environ.setdefault("BURLA_LOCAL_IDLE_S", "600")  # a leaked cluster stops itself
        os.environ["BURLA_LOCAL_CPUS"] = str(workers)
        from burla import remote_parallel_map

        self.remote_parallel_map = remote_parallel_map

    def map(self, function: Callable[[Any], Any], inputs: Sequence[Any]) -> list[Any]:
        return list(self.remote_parallel_map(function, inputs, spinner=False))

    def close(self) -> None:
        from burla.client import local

        local.stop(self.root)
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


class MultiprocessingPool:
    """multiprocessing.Pool with one start method; `map` with the default chunksize."""

    def __init__(self, workers: int, method: str) -> None:
        import multiprocessing

        self.pool = multiprocessing.get_context(method).Pool(workers)

    def map(self, function: Callable[[Any], Any], inputs: Sequence[Any]) -> list[Any]:
        return self.pool.map(function, inputs)

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


class ExecutorPool:
    """concurrent.futures.ProcessPoolExecutor (Linux default start method), `map` chunksize 1."""

    def __init__(self, workers: int) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor(workers)

    def map(self, function: Callable[[Any], Any], inputs: Sequence[Any]) -> list[Any]:
        return list(self.executor.map(function, inputs))

    def close(self) -> None:
        self.executor.shutdown(wait=True)


class JoblibPool:
    """joblib.Parallel(n_jobs=workers, backend="loky"), kept open between maps."""

    def __init__(self, workers: int) -> None:
        from joblib import Parallel, delayed

        self.delayed = delayed
        self.parallel = Parallel(n_jobs=workers, backend="loky")
        self.parallel.__enter__()

    def map(self, function: Callable[[Any], Any], inputs: Sequence[Any]) -> list[Any]:
        return list(self.parallel(self.delayed(function)(x) for x in inputs))

    def close(self) -> None:
        from joblib.externals.loky import get_reusable_executor

        self.parallel.__exit__(None, None, None)
        get_reusable_executor().shutdown(wait=True)


class DaskPool:
    """distributed.LocalCluster of worker processes (one thread each) + Client.map/gather."""

    def __init__(self, workers: int) -> None:
        import logging

        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster)

    def map(self, function: Callable[[Any], Any], inputs: Sequence[Any]) -> list[Any]:
        # pure=False: every call computes, as in every other system (no result cache).
        futures = self.client.map(function, inputs, pure=False)
        return list(self.client.gather(futures))

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


class RayPool:
    """ray.init(num_cpus=workers) on this machine only, one @ray.remote task per input.

    Its session files go under $BURLA_BENCH_SCRATCH when set (the runner gives each pair a
    directory it removes afterwards), else to ray's default, /tmp/ray.
    """

    def __init__(self, workers: int) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        self.ray = ray
        self.tasks: dict[Callable[[Any], Any], Any] = {}
        scratch = os.environ.get(SCRATCH_ENV)
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=str(Path(scratch) / "ray") if scratch else None,
            log_to_driver=False,
            configure_logging=False,
        )

    def map(self, function: Callable[[Any], Any], inputs: Sequence[Any]) -> list[Any]:
        task = self.tasks.get(function)
        if task is None:
            task = self.tasks[function] = self.ray.remote(function)
        return list(self.ray.get([task.remote(x) for x in inputs]))

    def close(self) -> None:
        self.ray.shutdown()


_OPENERS: dict[str, Callable[[int], Pool]] = {
    "burla": BurlaPool,
    "mp_fork": lambda workers: MultiprocessingPool(workers, "fork"),
    "mp_spawn": lambda workers: MultiprocessingPool(workers, "spawn"),
    "ppe": ExecutorPool,
    "joblib": JoblibPool,
    "dask": DaskPool,
    "ray": RayPool,
}
