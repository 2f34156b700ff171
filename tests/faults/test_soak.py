"""Soak: several clients submit jobs at once for a while, on a cluster whose Store and
BlobStore fail now and then, whose workers die now and then, and whose workers and nodes
are killed from outside. Every result must come back right: results lost = 0. The tally is written
to results/artifacts/soak.json, with what each extra run of an input was: a run after one
that died mid-input (at-least-once at work), or a run of an input that had finished but
whose result was lost with its worker or node (waste, kept small)."""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

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
    killed: list[tuple[str, set[int]]] = []
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
    inputs = sum(t["inputs"] for t in tallies)
    kinds = [kind for kind, _ in killed]
    report = {
        "seconds": SOAK_S,
        "clients": CLIENTS,
        "jobs": sum(t["jobs"] for t in tallies),
        "inputs": inputs,
        **tally_runs(runs, inputs, killed),
        "store_and_blob_faults_injected": len(faulty_cluster.injected()),
        "workers_killed_from_outside": kinds.count("container_service"),
        "nodes_killed_from_outside": kinds.count("node_service"),
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


def _kill_workers(main_pid: int, stop: threading.Event, killed: list[tuple[str, set[int]]]) -> None:
    """SIGKILL one of the cluster's workers every few seconds, and every fifth time its
    node_service instead. Each kill is noted with the processes it took down: the worker,
    or the node and the workers under it (which go with it)."""
    rng = random.Random(3)
    while not stop.wait(rng.uniform(3, 8)):
        kind = "node_service" if len(killed) % 5 == 4 else "container_service"
        victims = [pid for pid in _descendants(main_pid) if _runs(pid, kind)]
        if victims:
            pid = rng.choice(victims)
            below = set(_descendants(pid))
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append((kind, {pid, *below}))
            except ProcessLookupError:
                pass


def tally_runs(runs_dir: Path, inputs: int, killed: list[tuple[str, set[int]]]) -> dict[str, Any]:
    """What the runs the function logged (see soak_client) say about extra runs. An input
    that ran N times ran N - 1 extra: one for each earlier run that died mid-input (it had
    to run again), and one for each earlier run that finished but whose result never
    arrived: lost with its worker (results it had not sent yet) or its node. Those are
    counted by what ended the worker, with how long before that end they had finished."""
    runs: dict[str, list[tuple[str, float, int]]] = defaultdict(list)  # input -> its runs
    last_line: dict[int, tuple[str, float]] = {}  # worker -> its last line
    for path in runs_dir.iterdir():
        pid = int(path.name)
        for line in path.read_text().splitlines():
            what, tag, x, at = line.split()
            runs[f"{tag} {x}"].append((what, float(at), pid))
            last_line[pid] = (what, float(at))
    took_down = {pid: kind for kind, pids in killed for pid in pids}
    starts = sum(1 for each in runs.values() for what, _, _ in each if what == "start")
    crashed = finished_lost = 0
    lost_by_end: dict[str, int] = defaultdict(int)
    lost_ms_before_end: list[float] = []
    for each in runs.values():
        ends = sorted((at, pid) for what, at, pid in each if what == "end")
        crashed += sum(1 for what, _, _ in each if what == "start") - len(ends)
        for at, pid in ends[:-1]:  # the last finished run's result is the one that came
            finished_lost += 1
            worker_end, worker_end_at = last_line[pid]
            if worker_end == "exit":
                lost_by_end["worker_exited_in_a_later_input"] += 1
            elif pid in took_down:
                lost_by_end[f"{took_down[pid]}_killed"] += 1
            else:
                lost_by_end["other"] += 1
            lost_ms_before_end.append((worker_end_at - at) * 1000)
    return {
        "workers_exited_by_the_function": sum(1 for w, _ in last_line.values() if w == "exit"),
        "input_runs": starts,
        "inputs_rerun": starts - inputs,
        "reruns_after_a_run_died_mid_input": crashed,
        "reruns_of_finished_inputs_whose_result_was_lost": finished_lost,
        "finished_results_lost_by_how_their_worker_ended": dict(sorted(lost_by_end.items())),
        "finished_results_lost_ms_before_their_worker_ended": _quantiles(lost_ms_before_end),
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {}
    cuts = statistics.quantiles(values, n=10)
    return {"p10": round(cuts[0], 1), "median": round(cuts[4], 1), "p90": round(cuts[8], 1)}


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
