"""Fake images: source images whose VMs look like a Debian machine to what they run.

A VM of the fake Compute Engine API booted from an image registered with
`FakeComputeApi.add_image` boots with `unshare --mount --propagation private` (we run as
root) a boot script that

- bind-mounts directories of the VM's own (VM_DIR/root/opt, ...) on PRIVATE_PATHS: /opt,
  /etc/systemd/system, /var/lib/burla and /etc/burla. The host keeps its own (it only gets
  an empty mount point where it had none); the VM's outlive a reset, like a disk;
- starts the units enabled in /etc/systemd/system/*.wants/, as systemd does at boot;
- runs the startup script with bash, in VM_DIR.

Everything it runs has, first on PATH, a directory of shims: `apt-get`, which appends its
arguments to VM_DIR/apt-get.log as one line and installs nothing, and `systemctl`
(tests/fakes/vm_systemctl.py), which runs units as supervised processes. The image's
`environment` is added to everything the VM runs: the startup script and the units, which
otherwise get systemd's own environment (its PATH, LANG, and GCE_METADATA_HOST, which stands
in for the metadata server's fixed address). All of it stays in the VM's process group, so
the fake's delete and reset stop it all.

Not modelled: a real package manager, real systemd (see vm_systemctl), a kernel, network
or users of the VM's own; the rest of the host's file system is shared, /tmp included.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.fakes import vm_systemctl

PRIVATE_PATHS = ("/opt", "/etc/systemd/system", "/var/lib/burla", "/etc/burla")
"""Where a fake image's VM sees directories of its own."""
APT_GET_LOG = "apt-get.log"
"""The file of a VM's directory where its apt-get calls are logged, one a line."""
_SELF = "https://www.googleapis.com/compute/v1/"


@dataclass(frozen=True)
class FakeImage:
    """A fake Debian image; `environment` is added to everything its VMs run (e.g.
    PYTHONPATH, or PIP_NO_INDEX=1 so that pip installs offline)."""

    environment: Mapping[str, str] = field(default_factory=dict)


def image_path(source_image: str, project: str) -> str:
    """A source image as projects/P/global/images/NAME (or .../images/family/F), however the
    request names it: full URL, projects/... or global/... of the VM's project."""
    path = source_image.removeprefix(_SELF)
    return f"projects/{project}/{path}" if path.startswith("global/") else path


def boot_command(
    directory: Path, image: FakeImage, environment: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """Make the VM's directory ready to boot from the image (its startup script already at
    VM_DIR/startup-script); the command that boots it and the environment it runs with."""
    shims = directory / "machine-bin"
    shims.mkdir(exist_ok=True)
    _write_program(
        shims / "systemctl",
        f"exec {shlex.quote(sys.executable)} -I {shlex.quote(vm_systemctl.__file__)} "
        f'{shlex.quote(str(directory))} "$@"\n',
    )
    _write_program(
        shims / "apt-get", f'printf "%s\\n" "$*" >>{shlex.quote(str(directory / APT_GET_LOG))}\n'
    )
    services = {
        "PATH": vm_systemctl.SYSTEMD_PATH,
        "LANG": environment["LANG"],
        "GCE_METADATA_HOST": environment["GCE_METADATA_HOST"],
    }
    (directory / "machine.json").write_text(json.dumps(services | dict(image.environment)))
    shutil.rmtree(directory / "run", ignore_errors=True)  # /run is empty after a boot
    mounts = []
    for path in PRIVATE_PATHS:
        Path(path).mkdir(parents=True, exist_ok=True)  # a mount point, where none exists
        own = directory / "root" / path.lstrip("/")
        own.mkdir(parents=True, exist_ok=True)
        mounts.append(f"mount --bind {shlex.quote(str(own))} {shlex.quote(path)}\n")
    boot = directory / "boot.sh"
    boot.write_text(
        "set -eu\n"
        + "".join(mounts)
        + "shopt -s nullglob\n"
        + "for unit in /etc/systemd/system/*.wants/*; do\n"
        + '  systemctl start "${unit##*/}" || echo "boot: ${unit##*/} did not start" >&2\n'
        + "done\n"
        + f"exec bash {shlex.quote(str(directory / 'startup-script'))}\n"
    )
    path = environment.get("PATH", "/usr/bin:/bin")
    machine = environment | dict(image.environment)
    machine["PATH"] = f"{shims}:{image.environment.get('PATH', path)}"
    return ["unshare", "--mount", "--propagation", "private", "bash", str(boot)], machine


def _write_program(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
