"""Soak: several clients submit jobs at once for a while, on a cluster whose Store and
BlobStore fail now and then, whose workers die now and then, and whose workers and nodes
are killed from outside. Every result must come back right: results lost = 0. The tally is written
to results/artifacts/soak.json."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

CLIENTS = 3
SOAK_S = float(os.environ.get("BURLA_SOAK_S", "90"))
REPORT = Path(__file__).parents[2] / "results" / "artifacts" / "soak.json"


@pytest.mark.slow
@pytest.mark.timeout(SOAK_S + 240)
def test_many_clients_many_jobs_faults_everywhere_nothing_lost(faulty_cluster, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {**os.environ, "BURLA_LOCAL_DIR": str(faulty_cluster.root)}
    env.pop("BURLA_FAULTS", None)  # the cluster has its own; clients need none
    clients = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.faults.soak_client", str(runs), str(SOAK_S), str(n)],
            cwd=Path(__file__).parents[2],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(CLIENTS)
    ]
    stop = threading.Event()
    killed: list[str] = []
    killer = threading.Thread(target=_kill_workers, args=(faulty_cluster.info.pid, stop, killed))
    killer.start()
    try:
        outputs = [client.communicate(timeout=SOAK_S + 180) for client in clients]
    finally:
        stop.set()
        killer.join()
        for client in clients:
            if client.poll() is None:
                client.kill()
    tallies = []
    for client, (out, err) in zip(clients, outputs, strict=True):
        assert client.returncode == 0, err
        tallies.append(json.loads(out.strip().splitlines()[-1]))
    runs_total = sum(len(p.read_text().splitlines()) for p in runs.iterdir())
    report = {
        "seconds": SOAK_S,
        "clients": CLIENTS,
        "jobs": sum(t["jobs"] for t in tallies),
        "inputs": sum(t["inputs"] for t in tallies),
        "input_runs": runs_total,
        "inputs_rerun": runs_total - sum(t["inputs"] for t in tallies),
        "store_and_blob_faults_injected": len(faulty_cluster.injected()),
        "workers_killed_from_outside": killed.count("container_service"),
        "nodes_killed_from_outside": killed.count("node_service"),
        "results_lost": sum(t["lost"] for t in tallies),
        "errors": [e for t in tallies for e in t["errors"]],
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    assert report["results_lost"] == 0, report
    assert report["errors"] == [], report
    assert report["jobs"] >= 3 * CLIENTS
    assert report["store_and_blob_faults_injected"] > 0
    assert report["workers_killed_from_outside"] > 0
    assert report["nodes_killed_from_outside"] > 0
    assert report["inputs_rerun"] > 0


def _kill_workers(main_pid: int, stop: threading.Event, killed: list[str]) -> None:
    """SIGKILL one of the cluster's workers every few seconds, and every fifth time its
    node_service instead."""
    rng = random.Random(3)
    while not stop.wait(rng.uniform(3, 8)):
        kind = "node_service" if len(killed) % 5 == 4 else "container_service"
        victims = [pid for pid in _descendants(main_pid) if _runs(pid, kind)]
        if victims:
            pid = rng.choice(victims)
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(kind)
            except ProcessLookupError:
                pass


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _runs(pid: int, service: str) -> bool:
    try:
        return f"burla.services.{service}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
