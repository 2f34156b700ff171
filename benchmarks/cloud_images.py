"""Images on a cloud cluster with Docker workers: `python -m benchmarks.cloud_images [OUT.json]`.

Runs the cloud cluster of the end-to-end tests (main_service on the Firestore and storage
emulators, nodes on the fake Compute API's VMs with a Docker engine of their own, a
registry that asks for Google access tokens) and times, with a Dockerfile nobody built
before: its build, its push to the registry, the first job on it (which waits for the
build, the push, the nodes' pull and their new containers), and the job after it (warm
containers). It also counts the containers a standby node keeps. Writes the numbers as
JSON to OUT.json (default benchmarks/results/cloud_images.json) and prints them. Not
asserted anywhere. The cluster is started through pytest, whose fixtures start and stop
every component.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TIMING = Path(__file__).with_name("cloud_images_timing.py")
PLUGINS = [
    "tests.components.compute_api",
    "tests.components.docker",
    "tests.components.firestore",
    "tests.components.gcs",
    "tests.components.registry",
    "tests.e2e_gcp.conftest",
]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/cloud_images.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s"]
    command += [argument for plugin in PLUGINS for argument in ("-p", plugin)]
    command += ["--rootdir", str(TIMING.parent.parent), str(TIMING)]
    env = {**os.environ, "BURLA_BENCH_OUT": str(out.resolve())}
    raise SystemExit(subprocess.run(command, env=env).returncode)


if __name__ == "__main__":
    main()
