"""Soak: several clients submit jobs of mixed kinds at once for a while (see
soak_client), on a cluster whose Store and BlobStore fail now and then, whose workers die
now and then, and whose workers, nodes and main_service are killed from outside. Every
result must come back right (results lost = 0), every client must finish (hung = 0), and
the services' resident memory must hold. The tally is written to
results/artifacts/soak.json ($BURLA_SOAK_REPORT), with what each extra run of an input
was: a run after one that died mid-input (at-least-once at work), or a run of an input
that had finished but whose result was lost with its worker or node (waste, kept small).

`make soak` runs it for an hour ($BURLA_SOAK_S) and keeps its numbers in
benchmarks/soak-hour.json."""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from burla.client import local
from tests.faults import soak_client

CLIENTS = 3
SOAK_S = float(os.environ.get("BURLA_SOAK_S", "240"))
MAIN_KILLS = int(os.environ.get("BURLA_SOAK_MAIN_KILLS", "2"))
STEADY = float(os.environ.get("BURLA_SOAK_STEADY", "0.4"))
"""main_service is killed MAIN_KILLS times, evenly over the soak but for its last STEADY
share, which measures how the resident memory of a main_service that lives on grows."""
SAMPLE_S = 5.0
REPORT = Path(
    os.environ.get("BURLA_SOAK_REPORT")
    or Path(__file__).parents[2] / "results" / "artifacts" / "soak.json"
)
GRACE_S = 300.0
"""How long after the soak a client may take to finish its last job before it counts as
hung (a job caught by a kill waits for leases and retries)."""
RSS_GROWTH_BOUND_MB = 150.0
"""What a service's resident memory may grow by over its life in the soak. main_service
holds up to a thousand finished jobs (held_jobs.HELD_JOBS), so it grows until then and
then holds."""


@pytest.mark.slow
@pytest.mark.timeout(SOAK_S + GRACE_S + 120)
def test_many_clients_many_jobs_faults_everywhere_nothing_lost(faulty_cluster, tmp_path):
    runs, jobs = tmp_path / "runs", tmp_path / "jobs"
    runs.mkdir()
    jobs.mkdir()
    env = {**os.environ, "BURLA_LOCAL_DIR": str(faulty_cluster.root)}
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.faults.soak_client",
                str(runs),
                str(jobs),
                str(SOAK_S),
                str(n),
            ],
            cwd=Path(__file__).parents[2],
            env=env,  # with BURLA_FAULTS: a cluster a client starts again fails as this one
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(CLIENTS)
    ]
    stop = threading.Event()
    killed: list[tuple[str, set[int]]] = []
    main_kills: list[float] = []
    began = time.time()
    memory: list[tuple[float, str, int, float]] = []
    helpers = [
        threading.Thread(
            target=_kill_at_random, args=(faulty_cluster.root, stop, killed, main_kills)
        ),
        threading.Thread(target=_sample_memory, args=(faulty_cluster.root, stop, memory)),
    ]
    for helper in helpers:
        helper.start()
    try:
        outputs, hung = _wait_for(clients, SOAK_S + GRACE_S)
    finally:
        stop.set()
        for helper in helpers:
            helper.join()
    tallies = []
    for client, (out, err) in zip(clients, outputs, strict=True):
        if client in hung:
            continue
        assert client.returncode == 0, err
        tallies.append(json.loads(out.strip().splitlines()[-1]))
    inputs = sum(t["inputs"] for t in tallies)
    kinds = [kind for kind, _ in killed]
    finished_jobs = _finished_jobs(jobs)
    report = {
        "seconds": SOAK_S,
        "clients": CLIENTS,
        "hung_clients": len(hung),
        "jobs": sum(t["jobs"] for t in tallies),
        "jobs_by_kind": dict(sorted(Counter(kind for kind, _, _ in finished_jobs).items())),
        "job_seconds": _quantiles([took for _, took, _ in finished_jobs], top=True),
        "inputs": inputs,
        "slowest_jobs": [
            {"kind": kind, "seconds": round(took, 1), "ended_s": round(ended - began, 1)}
            for kind, took, ended in sorted(finished_jobs, key=lambda job: -job[1])[:5]
        ],
        "main_service_killed_at_s": [round(at - began, 1) for at in main_kills],
        **tally_runs(runs, sum(t["logged_inputs"] for t in tallies), killed),
        "store_and_blob_faults_injected": len(faulty_cluster.injected()),
        "workers_killed_from_outside": kinds.count("container_service"),
        "nodes_killed_from_outside": kinds.count("node_service"),
        "main_services_killed": kinds.count("main_service"),
        "results_lost": sum(t["lost"] for t in tallies),
        **timeouts_as_deaths(
            runs, [tag for t in tallies for tag in t["timeouts_reported_as_deaths"]], killed
        ),
        "errors": [e for t in tallies for e in t["errors"]],
        "resident_memory_mb": {
            service: _memory_over_life(memory, service, finished_jobs)
            for service in ("main_service", "node_service")
        },
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    assert report["hung_clients"] == 0, report
    assert report["results_lost"] == 0, report
    assert report["errors"] == [], report
    assert report["timeouts_reported_as_deaths_with_no_kill"] == [], report
    assert report["jobs"] >= 3 * CLIENTS
    assert set(report["jobs_by_kind"]) == set(soak_client.JOBS), report
    assert report["store_and_blob_faults_injected"] > 0
    assert report["workers_killed_from_outside"] > 0
    assert report["nodes_killed_from_outside"] > 0
    assert report["main_services_killed"] == MAIN_KILLS
    assert report["inputs_rerun"] > 0
    for service, life in report["resident_memory_mb"].items():
        assert life["growth"] <= RSS_GROWTH_BOUND_MB, (service, life)


def _wait_for(
    clients: list[subprocess.Popen[str]], within_s: float
) -> tuple[list[tuple[str, str]], list[subprocess.Popen[str]]]:
    """Each client's output, and the clients still running after `within_s` (hung:
    killed, their output dropped)."""
    deadline = time.monotonic() + within_s
    outputs: list[tuple[str, str]] = []
    hung: list[subprocess.Popen[str]] = []
    for client in clients:
        try:
            outputs.append(client.communicate(timeout=max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            client.kill()
            outputs.append(client.communicate())
            hung.append(client)
    return outputs, hung


def _kill_at_random(
    root: Path, stop: threading.Event, killed: list[tuple[str, set[int]]], main_kills: list[float]
) -> None:
    """SIGKILL one of the cluster's workers every few seconds, and every fifth time its
    node_service instead; SIGKILL main_service MAIN_KILLS times, then start the cluster
    again as a client would. Each kill is noted with the processes it took down: the
    worker, or the node and the workers under it (which go with it)."""
    rng = random.Random(3)
    began = time.monotonic()
    main_kills_at = [SOAK_S * (1 - STEADY) * (n + 1) / (MAIN_KILLS + 1) for n in range(MAIN_KILLS)]
    picks = 0
    while not stop.wait(rng.uniform(3, 8)):
        cluster = local.read(root)
        if cluster is None:
            continue
        if main_kills_at and time.monotonic() - began >= main_kills_at[0]:
            main_kills_at.pop(0)
            if _kill(cluster.pid, "main_service", killed):
                main_kills.append(time.time())
                local.start(root)
            continue
        kind = "node_service" if picks % 5 == 4 else "container_service"
        picks += 1
        victims = [pid for pid in _descendants(cluster.pid) if _runs(pid, kind)]
        if victims:
            _kill(rng.choice(victims), kind, killed)


def _kill(pid: int, kind: str, killed: list[tuple[str, set[int]]]) -> bool:
    below = set(_descendants(pid))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    killed.append((kind, {pid, *below}))
    return True


def _sample_memory(
    root: Path, stop: threading.Event, samples: list[tuple[float, str, int, float]]
) -> None:
    """Every SAMPLE_S, the resident memory (MB) of main_service and of each node_service."""
    while not stop.wait(SAMPLE_S):
        cluster = local.read(root)
        if cluster is None:
            continue
        now = time.time()
        pids = [("main_service", cluster.pid)] + [
            ("node_service", pid) for pid in _descendants(cluster.pid) if _runs(pid, "node_service")
        ]
        for service, pid in pids:
            if (rss := _resident_mb(pid)) is not None:
                samples.append((now, service, pid, rss))


def _resident_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def _finished_jobs(jobs_dir: Path) -> list[tuple[str, float, float]]:
    """(kind, seconds it took, when it ended) of every job the clients finished."""
    finished = []
    for path in jobs_dir.iterdir():
        for line in path.read_text().splitlines():
            kind, _, took, ended = line.split()
            finished.append((kind, float(took), float(ended)))
    return finished


def _memory_over_life(
    samples: list[tuple[float, str, int, float]],
    service: str,
    jobs: list[tuple[str, float, float]],
) -> dict[str, float]:
    """The resident memory of the process of `service` that saw the most jobs finish in
    its life: at its first and last sample, its growth, and those jobs."""
    lives: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for at, name, pid, rss in samples:
        if name == service:
            lives[pid].append((at, rss))
    best: dict[str, float] = {"first": 0.0, "last": 0.0, "growth": 0.0, "jobs": 0, "seconds": 0.0}
    for life in lives.values():
        (began, first), (ended, last) = life[0], life[-1]
        seen = sum(1 for _, _, at in jobs if began <= at <= ended)
        if seen > best["jobs"]:
            best = {
                "first": round(first, 1),
                "last": round(last, 1),
                "growth": round(last - first, 1),
                "jobs": seen,
                "seconds": round(ended - began, 1),
            }
    return best


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
            last_line[pid] = (what, float(at))
            if what != "sleep":  # a timeout job's try: see timeouts_as_deaths
                runs[f"{tag} {x}"].append((what, float(at), pid))
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


def timeouts_as_deaths(
    runs_dir: Path, tags: list[str], killed: list[tuple[str, set[int]]]
) -> dict[str, Any]:
    """A timeout job whose input's last try ended as a worker death (not as a timeout)
    is right only if that try's worker was killed from outside (itself, or its node)."""
    last_try: dict[
        str, tuple[float, int]
    ] = {}  # tag -> when the long input's last try began, where
    for path in runs_dir.iterdir():
        for line in path.read_text().splitlines():
            what, tag, seconds, at = line.split()
            if (
                what == "sleep"
                and float(seconds) > 1
                and float(at) > last_try.get(tag, (0.0, 0))[0]
            ):
                last_try[tag] = (float(at), int(path.name))
    took_down = {pid for _, pids in killed for pid in pids}
    return {
        "timeouts_reported_as_deaths": len(tags),
        "timeouts_reported_as_deaths_with_no_kill": [
            tag for tag in tags if tag not in last_try or last_try[tag][1] not in took_down
        ],
    }


def _quantiles(values: list[float], *, top: bool = False) -> dict[str, float]:
    if len(values) < 2:
        return {}
    cuts = statistics.quantiles(values, n=100)
    found = {"p10": cuts[9], "median": cuts[49], "p90": cuts[89]}
    if top:
        found |= {"p99": cuts[98], "max": max(values)}
    return {name: round(value, 1) for name, value in found.items()}


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
