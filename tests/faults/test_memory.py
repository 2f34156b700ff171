"""One main_service and its node through many jobs: their resident memory must hold.

Clients submit small jobs, a few at a time, BURLA_MEMORY_JOBS of them (1,000 here;
`make soak` runs 10,000 and keeps the numbers in benchmarks/memory-jobs.json). The
services' resident memory is read after a warm-up and then every tenth of the run; the
growth from the first reading to the last must stay within RSS_GROWTH_BOUND_MB.
main_service holds up to held_jobs.HELD_JOBS finished jobs whose client read them, so it
grows over the first thousand jobs and then holds."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from burla import remote_parallel_map
from burla.client import local
from tests.faults.test_soak import RSS_GROWTH_BOUND_MB, _descendants, _resident_mb, _runs
from tests.local_cluster import cluster_in

JOBS = int(os.environ.get("BURLA_MEMORY_JOBS", "1000"))
WARM_UP_JOBS = 50
CLIENTS = 4
REPORT = Path(
    os.environ.get("BURLA_MEMORY_REPORT")
    or Path(__file__).parents[2] / "results" / "artifacts" / "memory-jobs.json"
)


def _square(x: int) -> int:
    print(x)  # lines travel too, and are kept with the job
    return x * x


@pytest.mark.slow
@pytest.mark.timeout(600 + JOBS * 0.5)
def test_resident_memory_holds_over_many_jobs(tmp_path, monkeypatch):
    monkeypatch.setenv("BURLA_LOCAL_DIR", str(tmp_path))
    with cluster_in(tmp_path) as cluster:
        readings: list[dict[str, float]] = []
        done = 0
        lock = threading.Lock()
        errors: list[BaseException] = []

        def client(seed: int) -> None:
            nonlocal done
            sizes = (1, 2, 5, 10, 40)
            n = seed
            while True:
                with lock:
                    if done >= JOBS or errors:
                        return
                    done += 1
                    at = done
                inputs = list(range(sizes[n % len(sizes)]))
                n += 1
                try:
                    got = remote_parallel_map(_square, inputs, spinner=False)
                    assert got == [x * x for x in inputs]
                except BaseException as error:  # the main thread reports it
                    errors.append(error)
                    return
                if at in marks:
                    readings.append({"jobs": at, **_memory(cluster.pid)})

        marks = {WARM_UP_JOBS} | {JOBS * n // 10 for n in range(1, 11)} - set(range(WARM_UP_JOBS))
        began = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - began
        assert not errors, errors
        still = local.read(tmp_path)
        assert still is not None
        assert still.pid == cluster.pid  # one main_service through every job
    readings.sort(key=lambda reading: reading["jobs"])
    first, last = readings[0], readings[-1]
    report = {
        "jobs": JOBS,
        "clients": CLIENTS,
        "seconds": round(seconds, 1),
        "jobs_per_second": round(JOBS / seconds, 1),
        "bound_mb": RSS_GROWTH_BOUND_MB,
        "growth_mb": {
            service: round(last[service] - first[service], 1)
            for service in ("main_service", "node_service")
        },
        "readings_mb": readings,
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    assert first["jobs"] == WARM_UP_JOBS, readings
    assert last["jobs"] == JOBS, readings
    for service, growth in report["growth_mb"].items():
        assert growth <= RSS_GROWTH_BOUND_MB, (service, report)


def _memory(main_pid: int) -> dict[str, float]:
    """Resident MB of main_service and of its (one) node_service: the oldest process
    that runs it (it forks before it starts a worker)."""
    nodes = [pid for pid in _descendants(main_pid) if _runs(pid, "node_service")]
    main = _resident_mb(main_pid)
    node = _resident_mb(min(nodes)) if nodes else None
    assert main is not None, main_pid
    assert node is not None, nodes
    return {"main_service": round(main, 1), "node_service": round(node, 1)}
