"""A spare node: a node_service process started before its node is created.

It loads its modules while main_service boots, then waits on its stdin for the node it is
to be (its environment, one JSON line), takes that node's directory and log, and boots as
it (take_spare_boot). A spare never used exits when its stdin closes (its provider
closed, or its parent went). LocalComputeProvider.create hands the spare its node.

Only the standard library is loaded here: main_service starts its first node's spare
before it loads anything else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

NODE_COMMAND = (sys.executable, "-m", "burla.services.node_service")
SPARE_ENV = "BURLA_NODE_SPARE"
"""Set for a spare: its environment comes on its stdin (take_spare_boot)."""
SPARE_LOG = ".spare.log"
"""What a spare writes before it is a node (in the nodes' directory, named as no node is)."""
LOG_FILE = "node.log"
"""A node's stdout and stderr, in its directory."""


def start_spare(nodes: Path, command: Sequence[str] = NODE_COMMAND) -> subprocess.Popen[bytes]:
    """A spare started with `command` (which must take a spare's boot, as node_service
    does), in the nodes' directory `nodes`."""
    nodes.mkdir(parents=True, exist_ok=True)
    with open(nodes / SPARE_LOG, "ab") as output:
        return subprocess.Popen(
            list(command),
            cwd=nodes,
            env={**os.environ, SPARE_ENV: "1"},
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def take_spare_boot() -> None:
    """In a spare: wait for the node it is to be (its environment, on stdin), then take
    that node's environment, directory and log. Exits if the provider went first."""
    line = sys.stdin.buffer.readline()
    if not line:
        sys.exit(0)
    boot = json.loads(line)
    os.environ.update(boot["env"])
    os.environ.pop(SPARE_ENV, None)
    directory = Path(boot["directory"])
    os.chdir(directory)
    with open(directory / LOG_FILE, "ab") as log, open(os.devnull, "rb") as nothing:
        os.dup2(log.fileno(), sys.stdout.fileno())
        os.dup2(log.fileno(), sys.stderr.fileno())
        os.dup2(nothing.fileno(), sys.stdin.fileno())
