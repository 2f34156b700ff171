"""The vCPUs and memory of Compute Engine machine types, read from their names."""

from __future__ import annotations

import re

from burla.core.errors import InvalidRequestError
from burla.core.models import NodeType

_MACHINE_TYPE = re.compile(
    r"(?P<family>[a-z][a-z0-9]*)-(?P<kind>standard|highmem|highcpu)-(?P<cpus>\d+)"
)
_CUSTOM_TYPE = re.compile(r"(?:[a-z][a-z0-9]*-)?custom-(?P<cpus>\d+)-(?P<mb>\d+)(?:-ext)?")
_GB_PER_CPU = {"standard": 4.0, "highmem": 8.0, "highcpu": 1.0}
"""Memory per vCPU of most predefined machine types (n2, n2d, e2, c2, c3, n4, ...)."""
_FAMILY_GB_PER_CPU = {
    ("n1", "standard"): 3.75,
    ("n1", "highmem"): 6.5,
    ("n1", "highcpu"): 0.9,
    ("c4", "standard"): 3.75,
    ("c4", "highmem"): 7.75,
    ("c4", "highcpu"): 2.0,
    ("c2d", "highcpu"): 2.0,
    ("c3", "highcpu"): 2.0,
    ("c3d", "highcpu"): 2.0,
    ("n4", "highcpu"): 2.0,
}


_EXACT_GB = {
    "n2-highmem-128": 864.0,
    "c3d-highcpu-30": 59.0,
    "c3d-highcpu-60": 118.0,
    "c3d-highcpu-90": 177.0,
    "c3d-highcpu-180": 354.0,
    "c3d-highcpu-360": 708.0,
}
"""Types whose memory is not their family's per-vCPU rate times their vCPUs."""


def node_type_of(machine_type: str) -> NodeType:
    """The NodeType of a Compute Engine machine type: its vCPUs and memory."""
    if found := _MACHINE_TYPE.fullmatch(machine_type):
        family, kind, cpus = found["family"], found["kind"], int(found["cpus"])
        per_cpu = _FAMILY_GB_PER_CPU.get((family, kind), _GB_PER_CPU[kind])
        ram_gb = _EXACT_GB.get(machine_type, cpus * per_cpu)
    elif found := _CUSTOM_TYPE.fullmatch(machine_type):
        cpus, ram_gb = int(found["cpus"]), int(found["mb"]) / 1024
    else:
        raise InvalidRequestError(
            f"machine type {machine_type!r} is not one burla can size; use a predefined "
            "standard, highmem or highcpu type (e.g. n2-standard-8) or a custom one "
            "(e.g. n2-custom-8-32768)"
        )
    if cpus == 0:
        raise InvalidRequestError(f"machine type {machine_type!r} has no vCPUs")
    return NodeType(name=machine_type, cpus=cpus, ram_gb=round(ram_gb, 2))
