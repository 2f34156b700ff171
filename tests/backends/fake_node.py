"""A stand-in node_service for tests: listens on a loopback port, says where, waits for SIGTERM.

Started as a spare, it takes its node's boot first. It also writes its environment to
$BURLA_NODE_DIR/env.json, and ignores SIGTERM when FAKE_NODE_IGNORE_SIGTERM is set, so
that tests can check what a node process is given and that deleting a stubborn node
still works.
"""

import json
import os
import signal
import socket
import sys
from pathlib import Path

from burla.backends.local.node_spare import SPARE_ENV, take_spare_boot


def main() -> None:
    if os.environ.get(SPARE_ENV):
        take_spare_boot()
    node_dir = Path(os.environ["BURLA_NODE_DIR"])
    (node_dir / "env.json").write_text(json.dumps(dict(os.environ)))
    if os.environ.get("FAKE_NODE_IGNORE_SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = listener.getsockname()[:2]
    temporary = node_dir / ".address.tmp"
    temporary.write_text(f"{host}:{port}")
    os.replace(temporary, node_dir / "address")
    print(f"fake node {os.environ['BURLA_NODE_ID']} listens", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
