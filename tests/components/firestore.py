"""The official Firestore emulator, started once per test session on a free loopback port.

`gcloud emulators firestore start` runs gcloud, which runs a shell script, which runs
Java: it gets a process group of its own, and the whole group is stopped at the end.
Clients are made with FIRESTORE_EMULATOR_HOST set only while they are built (the client
reads it then), so nothing else in the session sees the variable.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from google.cloud.firestore_v1 import AsyncClient

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

_QUIET_GCLOUD = {
    # gcloud stays on this machine: no prompts, update checks or usage reports.
    "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
    "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
}


@dataclass(frozen=True)
class FirestoreEmulator:
    host: str
    """host:port, as FIRESTORE_EMULATOR_HOST spells it."""
    project: str = "burla-test"

    def client(self) -> AsyncClient:
        """A client of this emulator (anonymous credentials, plain-text gRPC)."""
        with mock.patch.dict(os.environ, {"FIRESTORE_EMULATOR_HOST": self.host}):
            return AsyncClient(project=self.project)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"the Firestore emulator exited with code {process.returncode} before it was "
                f"ready; its output:\n{log.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(
        f"the Firestore emulator was not ready within {READY_TIMEOUT_S} s; its output:\n"
        f"{log.read_text(errors='replace')}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the emulator's whole process group: gcloud, its shell and Java."""
    for sent in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sent)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            continue
        # gcloud is gone; give Java, in the same group, a moment before making sure.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        pytest.fail(
            "gcloud is not installed, so the Firestore emulator cannot start: run "
            "tools/components/firestore.sh (or `make components`)"
        )
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="burla-firestore-") as scratch:
        log = Path(scratch) / "emulator.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [gcloud, "emulators", "firestore", "start", f"--host-port=127.0.0.1:{port}"],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **_QUIET_GCLOUD, "CLOUDSDK_CONFIG": f"{scratch}/gcloud"},
            )
        try:
            _wait_until_ready(process, f"http://127.0.0.1:{port}/", log)
            yield FirestoreEmulator(host=f"127.0.0.1:{port}")
        finally:
            _stop(process)
