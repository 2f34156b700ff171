"""Find the embedded local cluster, starting it in the background when none runs.

Its state lives in one directory, $BURLA_LOCAL_DIR or ~/.burla/local; `cluster.json`
there says where its main_service listens and holds the token to talk to it. The cluster
outlives the process that started it, so later calls from any process find it warm, and
it stops itself after $BURLA_LOCAL_IDLE_S seconds (default 1800) without jobs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from burla.core.errors import ClusterUnavailableError
from burla.core.settings import file_stamp
from burla.core.trace import mark

START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ClusterInfo:
    url: str
    token: str
    pid: int
    cpus: int
    cert_sha256: str | None = None
    """The fingerprint of main_service's TLS certificate, pinned (see client.pinning)."""
    install: str | None = None
    """The install stamp (burla.release) of the burla a local cluster runs."""


def remote(url: str, token: str, cert_sha256: str | None = None) -> ClusterInfo:
    """A cluster known only by its address (no process of this machine's)."""
    return ClusterInfo(url, token, pid=0, cpus=0, cert_sha256=cert_sha256)


def local_dir(backend: str = "local") -> Path:
    """Where this machine's cluster of `backend` keeps its state: $BURLA_LOCAL_DIR or
    ~/.burla/local for "local", $BURLA_DOCKER_DIR or ~/.burla/docker for "docker"."""
    variable = "BURLA_DOCKER_DIR" if backend == "docker" else "BURLA_LOCAL_DIR"
    return Path(os.environ.get(variable) or Path.home() / ".burla" / backend)


def read(root: Path) -> ClusterInfo | None:
    """What `cluster.json` says, without asking the cluster."""
    try:
        info = json.loads((root / "cluster.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return ClusterInfo(
        info["url"], info["token"], info["pid"], info["cpus"], install=info.get("install")
    )


def stamp(root: Path) -> tuple[int, ...] | None:
    """A cheap mark of `cluster.json` that changes whenever it is written anew (it is
    replaced, never edited in place), or None if there is none."""
    return file_stamp(root / "cluster.json")


def find(root: Path | None = None) -> ClusterInfo | None:
    """The running local cluster, or None."""
    cluster = read(root or local_dir())
    return cluster if cluster is not None and healthy(cluster) else None


def healthy(cluster: ClusterInfo) -> bool:
    """Whether the cluster's main_service answers (plain http.client: no TLS set-up cost)."""
    import http.client  # here: launch() runs before the client's HTTP modules load

    parts = urlsplit(cluster.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.request("GET", "/health", headers={"authorization": f"Bearer {cluster.token}"})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def size_ignored(cluster: ClusterInfo, asked: int | None, backend: str = "local") -> str | None:
    """Why a running cluster is not of the size asked for (`asked`, else
    $BURLA_LOCAL_CPUS), or None: it keeps its size until it stops."""
    wanted = asked or int(os.environ.get("BURLA_LOCAL_CPUS") or 0)
    if not wanted or wanted == cluster.cpus:
        return None
    flag = " --backend docker" if backend == "docker" else ""
    return (
        f"the {backend} cluster already runs with {cluster.cpus} CPUs, not the {wanted} asked "
        f"for; it keeps its size until it stops: `burla local down{flag}`, then "
        f"`burla local up{flag} --cpus {wanted}` (or just call again)"
    )


def launch(root: Path | None = None, backend: str = "local") -> None:
    """Begin starting this machine's cluster of `backend`, without waiting, unless its
    cluster.json names one (running, or to be looked at by start()). The next start()
    waits for this launch rather than making its own, so that main_service boots while
    the caller goes on (remote_parallel_map loads the rest of the client meanwhile)."""
    root = root or local_dir(backend)
    if stamp(root) is not None:  # it runs, or start() will see why not
        return
    with _launches_lock:
        if _recent_launch(root) is None and read(root) is None:
            _launches[root] = (time.monotonic(), _launch(root, None, backend))


def start(root: Path | None = None, cpus: int | None = None, backend: str = "local") -> ClusterInfo:
    """This machine's cluster of `backend` ("local" or "docker"), started if it is not
    running."""
    root = root or local_dir(backend)
    with _launches_lock:
        launched = _recent_launch(root)
        _launches.pop(root, None)
    if (cluster := find(root)) is not None:
        return cluster
    launched = launched or _launch(root, cpus, backend)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if (cluster := find(root)) is not None:
            return cluster
        if launched.poll() not in (None, 0):  # it could not start: it says why in its log
            said = (root / "main.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise ClusterUnavailableError(
                f"this machine's {backend} cluster could not start: "
                f"{' '.join(said) or 'no reason given'}; its log is {root / 'main.log'}"
            )
        time.sleep(0.01)
    raise ClusterUnavailableError(
        f"the local cluster did not start within {START_TIMEOUT_S:g} s; "
        f"its log is {root / 'main.log'}"
    )


_launches: dict[Path, tuple[float, subprocess.Popen[bytes]]] = {}
"""The launches launch() began, by cluster directory, with when they began."""
_launches_lock = threading.Lock()


def _recent_launch(root: Path) -> subprocess.Popen[bytes] | None:
    """The launch of `root` begun within START_TIMEOUT_S, which start() may still wait
    for; an older one has booted its cluster or failed to."""
    began, process = _launches.get(root, (0.0, None))
    return process if time.monotonic() - began < START_TIMEOUT_S else None


def _launch(root: Path, cpus: int | None, backend: str) -> subprocess.Popen[bytes]:
    """Run main_service for `root` with --detach: it exits (0) once it runs in the
    background, at once after checking what it needs, or with an error it logged."""
    root.mkdir(parents=True, exist_ok=True)
    cpus = cpus or int(os.environ.get("BURLA_LOCAL_CPUS") or os.cpu_count() or 1)
    command = [
        sys.executable,
        "-m",
        "burla.services.main_service",
        "--local-dir",
        str(root),
        "--cpus",
        str(cpus),
        "--idle-s",
        os.environ.get("BURLA_LOCAL_IDLE_S", "1800"),
        "--detach",
    ]
    if backend == "docker":
        command += ["--containers", "docker"]
    with open(root / "main.log", "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=root
        )
    mark("client launches main_service")
    # Reaped as soon as it exits, whoever waits for the cluster.
    threading.Thread(target=process.wait, name="burla-launch", daemon=True).start()
    return process


def stop(root: Path | None = None, timeout_s: float = 30.0) -> bool:
    """Stop the local cluster and its nodes; False if none was running."""
    root = root or local_dir()
    cluster = find(root)
    if cluster is None:
        return False
    os.kill(cluster.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not (root / "cluster.json").exists() and not alive(cluster.pid):
            return True
        time.sleep(0.02)
    raise ClusterUnavailableError(
        f"the local cluster (pid {cluster.pid}) did not stop within {timeout_s:g} s"
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
