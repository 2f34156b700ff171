"""Run every (system, workload) pair in a fresh interpreter and write the results folder.

Each pair is `python -m benchmarks.pair SYSTEM WORKLOAD --repeat N` in a new session, with
its own temporary BURLA_LOCAL_DIR and a time-out, so a hang is reported, not fatal. After
each pair, whatever it left behind is stopped: burla clusters under its directory (with
`burla.client.local.stop`), then any process still in its session, by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks import report, sim_numbers
from benchmarks import workloads as w
from benchmarks.pair import PROJECT_ROOT, last_json_line
from benchmarks.systems import SCRATCH_ENV, SYSTEMS
from burla.release import DISTRIBUTION

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
PAIR_TIMEOUT_S = 600.0
PACKAGES = ("burla", "joblib", "dask", "distributed", "ray", "cloudpickle", "matplotlib")


@dataclass(frozen=True)
class RunOptions:
    """What `python -m benchmarks run` was asked to do."""

    workloads: tuple[str, ...] = tuple(w.WORKLOADS)
    systems: tuple[str, ...] = SYSTEMS
    repeat: int = 3
    out: Path | None = None
    timeout_s: float = PAIR_TIMEOUT_S
    profile: bool = False


def run(options: RunOptions) -> Path:
    """Run the pairs, print progress as each finishes, write the results; the folder."""
    stamp = datetime.now(UTC)
    out = options.out or RESULTS_DIR / stamp.strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "started_utc": stamp.isoformat(timespec="seconds"),
        "repeat": options.repeat,
        "host": host_info(),
        "packages": package_versions(),
        "calibration": calibration(),
        "workloads": {name: asdict(spec) for name, spec in w.WORKLOADS.items()},
        "systems": list(options.systems),
        "pairs": [],
    }
    pairs = [(wl, system) for wl in options.workloads for system in options.systems]
    print(f"{len(pairs)} pairs, repeat {options.repeat}, results in {out}", flush=True)
    started = time.perf_counter()
    for done, (workload, system) in enumerate(pairs, 1):
        result = run_pair_process(system, workload, options, out)
        document["pairs"].append(result)
        document["elapsed_s"] = time.perf_counter() - started
        write_json(out / "results.json", document)
        print(progress_line(done, len(pairs), result), flush=True)
    if "burla" in options.systems:
        document["burla_services"] = burla_inside(out, options.timeout_s)
    document["host"]["load_average_end"] = os.getloadavg()
    document["simulator"] = sim_numbers.measure_if_installed()  # cloud scale, virtual time
    write_json(out / "results.json", document)
    (out / "results.md").write_text(report.markdown(document))
    chart = report.write_chart(document, out / "chart.png")
    if chart is not None:
        print(f"chart not drawn: {chart}", flush=True)
    if options.out is None:
        link_latest(out)
    print(f"done in {document['elapsed_s']:.0f} s: {out}", flush=True)
    return out


def burla_inside(out: Path, timeout_s: float) -> dict[str, Any]:
    """Where burla's time goes on this machine: each process's CPU per input and per job
    (benchmarks.service_cpu) and a warm call's hops (benchmarks.hops), each measured in a
    fresh interpreter with a cluster of its own."""
    found: dict[str, Any] = {}
    for name in ("service_cpu", "hops"):
        path = out / f"burla-{name}.json"
        argv = [sys.executable, "-m", f"benchmarks.{name}", str(path)]
        try:
            subprocess.run(
                argv, cwd=PROJECT_ROOT, timeout=timeout_s, check=True, capture_output=True
            )
            found[name] = json.loads(path.read_text())
        except (subprocess.SubprocessError, OSError, ValueError) as error:
            found[name] = {"error": f"not measured: {one_line_of(error)}"}
    return found


def one_line_of(error: BaseException) -> str:
    stderr = getattr(error, "stderr", None)
    text = stderr.decode(errors="replace").strip().splitlines()[-1:] if stderr else []
    return text[0] if text else str(error)


def run_pair_process(system: str, workload: str, options: RunOptions, out: Path) -> dict[str, Any]:
    """One pair in a fresh interpreter and session; its result, with what it cost to run."""
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"burla-bench-{workload}-{system}-"))
    env = dict(
        os.environ,
        BURLA_LOCAL_DIR=str(root),
        BURLA_LOCAL_IDLE_S="600",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=os.pathsep.join(
            [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    )
    env[w.CPU_LOOPS_ENV] = str(w.CPU_LOOPS)
    env[SCRATCH_ENV] = str(root)
    argv = [sys.executable, "-m", "benchmarks.pair", system, workload]
    argv += ["--repeat", str(options.repeat)]
    if options.profile:
        argv += ["--profile", str(out / "profiles" / f"{workload}-{system}.html")]
    stdout_path = logs / f"{workload}-{system}.out"
    stderr_path = logs / f"{workload}-{system}.log"
    started = time.perf_counter()
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True
        )
        leftovers: list[str] = []
        try:
            process.wait(timeout=options.timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            leftovers += [f"at the time-out: {p}" for p in stop_session(process.pid)]
            process.wait()
    took = time.perf_counter() - started
    leftovers += clean_up(process.pid, root)
    result = pair_result(system, workload, stdout_path, stderr_path, process.returncode)
    if timed_out:
        result = {
            **result,
            "status": "failed",
            "error": f"timed out after {options.timeout_s:g} s (see {stderr_path.name})",
        }
    result["pair_s"] = took
    if leftovers:
        result["leftovers"] = leftovers
    return result


def pair_result(
    system: str, workload: str, stdout: Path, stderr: Path, returncode: int | None
) -> dict[str, Any]:
    """The JSON line the pair printed, or a failure that says why there is none."""
    try:
        result = last_json_line(stdout.read_text())
    except ValueError:
        tail = stderr.read_text()[-1500:].strip()
        return {
            "system": system,
            "workload": workload,
            "status": "failed",
            "error": f"the pair process exited {returncode} without a result: {tail}",
        }
    return result


def clean_up(session: int, root: Path, settle_s: float = 3.0) -> list[str]:
    """Stop what a pair left running; what had to be stopped, for the record. Helpers that
    end on their own once the pair has exited (resource trackers) get `settle_s` to do so."""
    stopped = stop_burla_clusters(root)
    deadline = time.monotonic() + settle_s
    while session_members(session) and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped += stop_session(session)
    shutil.rmtree(root, ignore_errors=True)
    return stopped


def stop_burla_clusters(root: Path) -> list[str]:
    """Stop every burla local cluster whose state is under `root` (the pair's own directory,
    and the per-repetition ones of W3 inside it)."""
    from burla.client import local

    stopped = []
    directories = [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.exists() else []
    for directory in directories:
        cluster = local.read(directory)
        if cluster is None:
            continue
        try:
            if local.stop(directory):
                stopped.append(f"burla cluster in {directory.name or directory}")
        except Exception as error:
            stopped.append(f"burla cluster in {directory}: {error}")
        if alive(cluster.pid):  # it did not answer /health, or did not stop: signal it
            with contextlib.suppress(ProcessLookupError):
                os.kill(cluster.pid, signal.SIGTERM)
            stopped.append(f"burla main_service pid {cluster.pid} (SIGTERM)")
    return stopped


def stop_session(session: int, grace_s: float = 5.0) -> list[str]:
    """SIGTERM, then SIGKILL after `grace_s`, every process still in `session` (a session
    this runner created for one pair, so every member is a process that pair started)."""
    members = session_members(session)
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(pid) for pid in members):
        time.sleep(0.05)
    for pid in members:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return [f"pid {pid} {name}" for pid, name in members.items()]


def session_members(session: int) -> dict[int, str]:
    """Live processes of `session`: pid -> command name (from /proc)."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, _ppid, _pgrp, sid = stat[stat.rindex(")") + 2 :].split()[:4]
        if int(sid) == session and state != "Z":
            members[int(entry.name)] = name
    return members


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def progress_line(done: int, total: int, result: dict[str, Any]) -> str:
    head = f"[{done:>2}/{total}] {result['workload']:<7} {result['system']:<8}"
    took = f"(pair took {result.get('pair_s', 0):.0f} s)"
    if result["status"] != "ok":
        return f"{head} {result['status']}: {str(result.get('error', ''))[:160]} {took}"
    scale, unit = (1000, "ms") if w.WORKLOADS[result["workload"]].unit == "ms" else (1, "s")
    spread = f"min {result['min_s'] * scale:.4g}, max {result['max_s'] * scale:.4g}"
    return f"{head} median {result['median_s'] * scale:.4g} {unit} ({spread}) {took}"


def host_info() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gb": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "load_average_start": os.getloadavg(),
    }


def package_versions() -> dict[str, str | None]:
    """Installed version of burla and of each peer's package; None when not installed."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            # burla's distribution is named burla-cluster (burla.release.DISTRIBUTION).
            versions[name] = version(DISTRIBUTION if name == "burla" else name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def calibration() -> dict[str, Any]:
    """The CPU loop count in use, and one call of it timed again here for the record."""
    started = time.perf_counter()
    w.spin(w.CPU_LOOPS)
    return {
        "cpu_loops": w.CPU_LOOPS,
        "target_s": w.CPU_TARGET_S,
        "one_call_s": time.perf_counter() - started,
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(path)


def link_latest(out: Path) -> None:
    """Point benchmarks/results/latest at `out` (a relative symlink, replaced atomically)."""
    latest = RESULTS_DIR / "latest"
    staging = RESULTS_DIR / f".latest-{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(out.relative_to(RESULTS_DIR), target_is_directory=True)
    staging.replace(latest)
