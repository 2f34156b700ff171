"""Run the embedded local cluster's main_service: `python -m burla.services.main_service`.

The cluster's state lives in one directory (see burla.client.local): the Store, the blob
store, the nodes' directories and `cluster.json`, which tells clients where to connect.
Only one main_service runs per directory; a second one exits at once. The first node
boots before the web stack loads, so the two load side by side.
"""

from __future__ import annotations

import argparse
import fcntl
import os
from pathlib import Path

import anyio

from burla.services.main_service.local_start import begin


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m burla.services.main_service")
    parser.add_argument("--local-dir", type=Path, required=True)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--idle-s", type=float, default=1800.0)
    parser.add_argument(
        "--detach", action="store_true", help="run in the background, in a session of its own"
    )
    args = parser.parse_args()
    if args.detach:
        if os.fork():
            os._exit(0)  # the caller waits for this process only, not for the cluster
        os.setsid()
    root: Path = args.local_dir
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "main.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another main_service owns this directory
        start = anyio.run(begin, root, args.cpus)
        from burla.services import serving  # the web stack, loaded now
        from burla.services.main_service.local import serve

        serving.run(serve, start, args.idle_s)


if __name__ == "__main__":
    main()
