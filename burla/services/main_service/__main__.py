"""Run this machine's cluster's main_service: `python -m burla.services.main_service`.

The cluster's state lives in one directory (see burla.client.local): the Store, the blob
store, the nodes' directories and `cluster.json`, which tells clients where to connect.
Only one main_service runs per directory; a second one exits at once. The first node
boots before the web stack loads, so the two load side by side.

With `--containers docker` the nodes run their workers in Docker containers. The engine
and the default image are checked before anything starts (and before `--detach` lets the
caller go), so that a cluster that could never run a job fails at once, saying what to
do, instead of booting nodes that die one after another. Containers the cluster's nodes
could not stop themselves (a node that was killed) are removed when it starts and stops.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
from pathlib import Path
from typing import get_args

import anyio

from burla.core.errors import BackendError, BurlaError
from burla.services.main_service.local_start import Containers, begin, standby_image


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m burla.services.main_service")
    parser.add_argument("--local-dir", type=Path, required=True)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--idle-s", type=float, default=1800.0)
    parser.add_argument(
        "--containers",
        choices=get_args(Containers),
        default="process",
        help="what the nodes' workers run in: processes (default) or Docker containers",
    )
    parser.add_argument(
        "--detach", action="store_true", help="run in the background, in a session of its own"
    )
    args = parser.parse_args()
    containers: Containers = args.containers
    if containers == "docker":
        try:
            check_docker(standby_image(containers))
        except BurlaError as error:
            parser.exit(1, f"burla's Docker cluster cannot start: {error}\n")
    if args.detach:
        if os.fork():
            os._exit(0)  # the caller waits for this process only, not for the cluster
        os.setsid()
    root: Path = args.local_dir.resolve()  # nodes and containers see the same path
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "main.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another main_service owns this directory
        if containers == "docker":
            remove_leftover_containers(root)
        start = anyio.run(begin, root, args.cpus, containers)
        from burla.services import serving  # the web stack, loaded now
        from burla.services.main_service.local import serve

        try:
            serving.run(serve, start, args.idle_s)
        finally:
            if containers == "docker":
                remove_leftover_containers(root)


def check_docker(image: str) -> None:
    """BackendError unless the Docker engine answers and has `image`."""
    from burla.backends.docker.client import connect
    from burla.backends.docker.image import has_image

    client = connect()
    try:
        if not has_image(client, image):
            raise BackendError(
                f"the Docker engine has no image {image!r}, which the workers run in; "
                "build it once with `burla image build` (as root, about a minute)"
            )
    finally:
        client.close()


def remove_leftover_containers(root: Path) -> None:
    """Remove the Docker containers of this cluster's nodes, which must all be gone."""
    from burla.backends.docker.client import connect
    from burla.backends.docker.cluster import remove_cluster_containers

    client = connect()
    try:
        removed = remove_cluster_containers(client, root)
    finally:
        client.close()
    if removed:
        print(f"removed Docker containers left by this cluster's nodes: {removed}", file=sys.stderr)


if __name__ == "__main__":
    main()
