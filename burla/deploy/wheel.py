"""A wheel of the burla that runs here, so a cluster's machines run exactly this burla.

`burla deploy` puts it in the cluster's bucket with a constraints file that pins every
package burla needs (with the extras a cluster uses) to the version installed here;
main_service's VM and every node install both from there. The wheel is made from the
package's own files (an editable install and a checkout included), reproducibly: the
same code gives the same bytes, and its version carries the code's build id.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from burla.core.errors import InvalidRequestError
from burla.release import DISTRIBUTION, PACKAGE_DIR, build_id, package_files

CLUSTER_EXTRAS = ("gcp", "docker")
"""The extras a cluster's machines install."""
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


@dataclass(frozen=True)
class Wheel:
    filename: str
    content: bytes
    version: str
    constraints: str
    """pip constraints: `name==version` of every package the wheel's extras need."""


def build_wheel() -> Wheel:
    """The wheel of this burla, with its build id in its version."""
    metadata = _installed_metadata()
    version = f"{metadata.version.split('+')[0]}+{build_id()}"
    dist_info = f"burla_cluster-{version}.dist-info"
    members: dict[str, bytes] = {
        f"burla/{path.as_posix()}": (PACKAGE_DIR / path).read_bytes() for path in package_files()
    }
    members[f"{dist_info}/METADATA"] = _with_version(_read(metadata, "METADATA"), version)
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: burla deploy\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    members[f"{dist_info}/entry_points.txt"] = _read(metadata, "entry_points.txt")
    record = f"{dist_info}/RECORD"
    members[record] = _record(members, record)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():  # RECORD last, as wheels have it
            entry = zipfile.ZipInfo(name, _ZIP_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return Wheel(
        filename=f"burla_cluster-{version}-py3-none-any.whl",
        content=buffer.getvalue(),
        version=version,
        constraints=pinned_requirements(CLUSTER_EXTRAS),
    )


def pinned_requirements(extras: Iterable[str]) -> str:
    """`name==version` lines of everything burla needs with `extras`, transitively, as
    installed here (the extras of dependencies are left out, as pip constraints must)."""
    wanted = set(extras)
    pending = [
        name
        for line in _installed_metadata().requires or []
        if (name := _needed(line, wanted)) is not None
    ]
    pinned: dict[str, str] = {}
    while pending:
        name = _canonical(pending.pop())
        if name in pinned:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement whose marker does not hold here (another platform)
        pinned[name] = dist.version
        pending += [dep for line in dist.requires or [] if (dep := _needed(line, set()))]
    return "".join(f"{name}=={version}\n" for name, version in sorted(pinned.items()))


def _needed(requirement: str, extras: set[str]) -> str | None:
    """The distribution a requirement line names, if it applies with `extras`."""
    found = _NAME.match(requirement)
    if found is None:
        return None
    marker = requirement.partition(";")[2]
    extra = _EXTRA_MARKER.search(marker)
    if extra is not None and extra.group(1) not in extras:
        return None
    return found.group(1)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_metadata() -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise InvalidRequestError(
            f"burla deploy ships the burla it runs as a wheel, which needs {DISTRIBUTION} "
            f"installed (pip install '{DISTRIBUTION}[gcp]', or pip install -e . in a checkout)"
        ) from None


def _read(metadata: importlib.metadata.Distribution, name: str) -> bytes:
    text = metadata.read_text(name)
    if text is None:
        raise InvalidRequestError(
            f"the installed {DISTRIBUTION} has no {name}; reinstall it: "
            f"pip install --force-reinstall '{DISTRIBUTION}[gcp]'"
        )
    return text.encode()


def _with_version(metadata: bytes, version: str) -> bytes:
    return re.sub(rb"(?m)^Version: .*$", f"Version: {version}".encode(), metadata, count=1)


def _record(members: dict[str, bytes], record: str) -> bytes:
    lines = []
    for name, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    lines.append(f"{record},,")
    return ("\n".join(lines) + "\n").encode()
