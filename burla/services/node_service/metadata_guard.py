"""Keeping a cloud node's workers from its VM's credentials.

Anything on a Compute Engine VM that reaches the metadata server can ask it for an access
token of the VM's service account, which may read and write the whole cluster. A node's
Docker workers share the VM's network (they use the host's), so they run as a user of
their own, WORKER_USER, and one iptables rule in the VM refuses that user's connections
to the metadata server; node_service itself, as root, still reads its internal IP and
token there. A worker gets only its job's own token, in its environment.

The rule is put in when the node starts and taken out when it stops, marked with the
node's id so that nodes sharing a machine (the tests' fake VMs) keep theirs apart.
Only IPv4 is guarded: Compute Engine's metadata server answers IPv6 only on IPv6-only VMs,
which burla's VMs are not.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Mapping
from urllib.parse import urlsplit

from burla.backends.gcp.metadata import DEFAULT_HOST, METADATA_HOST_ENV, metadata_url
from burla.core.errors import BackendError

WORKER_USER = (6501, 6501)
"""The uid and gid a guarded node's workers run as: no account of a Debian VM has them."""
METADATA_IP = "169.254.169.254"
"""Where metadata.google.internal is, on every Compute Engine VM."""


class MetadataGuard:
    """The iptables rule that refuses `uid`'s connections to the metadata server at
    `address` (ip, port)."""

    def __init__(self, address: tuple[str, int], uid: int, tag: str) -> None:
        ip, port = address
        self.rule = [
            *("-d", f"{ip}/32", "-p", "tcp", "--dport", str(port)),
            *("-m", "owner", "--uid-owner", str(uid)),
            *("-m", "comment", "--comment", tag),
            *("-j", "REJECT", "--reject-with", "tcp-reset"),
        ]

    def install(self) -> None:
        """Put the rule in (once, however often asked); BackendError if iptables cannot."""
        if _iptables("-C", "OUTPUT", *self.rule, check=False) != 0:
            _iptables("-I", "OUTPUT", *self.rule)

    def remove(self) -> None:
        """Take the rule out, if it is in."""
        while _iptables("-D", "OUTPUT", *self.rule, check=False) == 0:
            pass


def metadata_address(env: Mapping[str, str]) -> tuple[str, int]:
    """The metadata server's IPv4 address and port, as GCE_METADATA_HOST names it (tests
    move it to loopback), else Compute Engine's own."""
    server = urlsplit(metadata_url("", env))  # where burla's own requests go
    host = server.hostname or DEFAULT_HOST
    try:
        port = server.port or 80
        return (METADATA_IP if host == DEFAULT_HOST else socket.gethostbyname(host)), port
    except (OSError, ValueError) as error:
        named = env.get(METADATA_HOST_ENV)
        raise BackendError(f"{METADATA_HOST_ENV}={named!r} names no address: {error}") from None


def _iptables(*arguments: str, check: bool = True) -> int:
    executable = shutil.which("iptables")
    if executable is None:
        raise BackendError(
            "keeping workers from the VM's metadata server needs iptables: apt-get install "
            "iptables (the Docker engine's package brings it)"
        )
    done = subprocess.run(
        [executable, "-w", *arguments], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if check and done.returncode != 0:
        raise BackendError(
            f"iptables {' '.join(arguments[:2])} failed (exit code {done.returncode}): "
            f"{done.stderr.strip()}; node_service must run as root to guard the metadata server"
        )
    return done.returncode
