"""First run and repeat runs of a job that needs a package the workers lack.

`python -m benchmarks.packages [OUT.json] [--backend local|docker] [--repeat N]`

On a fresh cluster in a temporary directory (started and warmed with a plain job, untimed)
it times: the first job that imports iniconfig (the cluster installs it: pip, archive,
blob store, unpack, link), then N repeats of it (nothing is installed or downloaded), and
N runs of the same job without the import, for comparison. Writes the numbers as JSON to
OUT.json (default benchmarks/results/packages.json) and prints them. Not asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from burla import remote_parallel_map
from burla.client import local

INPUTS = [f"[section]\nkey = {n}\n" for n in range(8)]


def parses_ini(text: str) -> str:
    import iniconfig

    return iniconfig.IniConfig("job.ini", data=text)["section"]["key"]


def splits_ini(text: str) -> str:
    return text.split("= ", 1)[1].strip()


def timed(function: Any, backend: str) -> float:
    started = time.perf_counter()
    results = remote_parallel_map(function, INPUTS, backend=backend, spinner=False)
    elapsed = time.perf_counter() - started
    if results != [str(n) for n in range(len(INPUTS))]:
        raise SystemExit(f"{function.__name__} returned {results!r}")
    return elapsed


def measure(backend: str, repeat: int) -> dict[str, Any]:
    variable = "BURLA_DOCKER_DIR" if backend == "docker" else "BURLA_LOCAL_DIR"
    with tempfile.TemporaryDirectory(prefix="burla-bench-packages-") as root:
        os.environ[variable] = root
        try:
            timed(splits_ini, backend)  # the cluster starts and its workers warm up
            first = timed(parses_ini, backend)
            repeats = [timed(parses_ini, backend) for _ in range(repeat)]
            plain = [timed(splits_ini, backend) for _ in range(repeat)]
        finally:
            local.stop(Path(root))
    return {
        "backend": backend,
        "inputs": len(INPUTS),
        "package": "iniconfig",
        "first_run_s": round(first, 4),
        "repeat_runs_s": [round(t, 4) for t in repeats],
        "repeat_median_s": round(statistics.median(repeats), 4),
        "without_package_median_s": round(statistics.median(plain), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.packages")
    parser.add_argument("out", nargs="?", default="benchmarks/results/packages.json")
    parser.add_argument("--backend", choices=("local", "docker"), default="local")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    numbers = measure(args.backend, args.repeat)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers))


if __name__ == "__main__":
    main()
