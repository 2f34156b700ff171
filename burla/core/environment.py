"""What a job's Python environment is made of: the packages it needs beyond the worker's own.

Standard library only (the client loads it): the client reads its installed distributions
and hands them here; the builder and the nodes name built archives with `package_blob_key`.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

WORKER_DISTRIBUTIONS = ("cloudpickle", "tblib", "httpx", "rich")
"""Distributions besides burla itself that every worker has, with what they require: the
worker's own (cloudpickle, tblib) and the client's, so that a function can itself call
remote_parallel_map. Jobs never ship these."""

RUNNING_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
"""This interpreter's Python version, as a ContainerSpec and a JobSpec give it."""

SOURCE_LABEL = "+src."
"""Marks the version of a package sent as source (an editable install) rather than
installed from an index: `<version>+src.<hash of its files>`."""

PACKAGES_PREFIX = "packages/"
"""Where built packages live, in the BlobStore (archives) and the Store (build claims)."""
PACKAGES_LIMIT_BYTES = 20 * 2**30
"""The packages kept for later jobs ($BURLA_PACKAGES_MAX_GB), at most: unpacked on each
node, and archived in the cluster's BlobStore."""


_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]{0,99}")


@dataclass(frozen=True)
class PythonPackage:
    """One distribution a job needs, pinned to the version the caller has installed.

    A plain dataclass (pydantic validates it inside a JobSpec) so that the client loads
    without pydantic."""

    name: str
    """The canonical name (PEP 503: lower case, runs of -_. as one -)."""
    version: str

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or not _VERSION.fullmatch(self.version):
            raise ValueError(f"not a canonical package name and version: {self.requirement}")

    @property
    def from_source(self) -> bool:
        return SOURCE_LABEL in self.version

    @property
    def requirement(self) -> str:
        """What an installer is asked for: exactly this version."""
        return f"{self.name}=={self.version}"


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirement_name(requirement: str) -> str | None:
    """The distribution a requirement line (from a wheel's metadata) names, or None for one
    that only an extra asks for."""
    if "extra ==" in requirement.replace('"', " ").replace("'", " "):
        return None
    match = _REQUIREMENT_NAME.match(requirement)
    return canonical_name(match[1]) if match else None


_SHORT_STRING = re.compile(rb"\x8c([\x01-\xff])([A-Za-z_][A-Za-z0-9_.]*)")
"""A pickle's SHORT_BINUNICODE opcode (how protocols 4 and 5, cloudpickle's, write every
string under 256 bytes) with its length byte, and the identifier-like text after it."""


_STANDARD_MODULES = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)


@functools.lru_cache(maxsize=32)
def names_in_pickle(data: bytes) -> frozenset[str]:
    """Every top-level name a pickle could import, read without unpickling it.

    A function pickled by cloudpickle names its modules in strings: a global's module, a
    module it captured, and the names its code uses (so `import x` inside the function
    counts). Extra names (local variables, plain strings, bytes that look like a string
    opcode) are harmless: they are looked up among installed top-level modules, which few
    of them are. A regular expression finds them (the pickle is not walked op by op), so a
    function that captures much data costs little more. The same function called again
    pickles to the same bytes: their names are kept (a lookup hashes the bytes once, some
    microseconds for a pickle that carries its source file's lines, where the search took
    tens).
    """
    names: set[str] = set()
    for match in _SHORT_STRING.finditer(data):
        length, text = match[1][0], match[2]
        if len(text) >= length:
            names.add(text[:length].split(b".", 1)[0].decode())
    return frozenset(names - _STANDARD_MODULES)


def needed_packages(
    names: Iterable[str],
    distributions_of: Mapping[str, Iterable[str]],
    installed: Mapping[str, str],
    requires: Mapping[str, Iterable[str]],
    provided: Iterable[str],
) -> tuple[PythonPackage, ...]:
    """The packages a job needs: the distributions that provide `names` (by top-level
    module, as importlib.metadata.packages_distributions gives them), and, transitively,
    the installed distributions they require, minus those the worker provides already.

    `installed` maps canonical names to versions; `requires` canonical names to the
    requirement lines of their metadata; `provided` holds canonical names.
    """
    wanted = [canonical_name(dist) for name in names for dist in distributions_of.get(name, ())]
    found = with_requirements(wanted, installed, requires, skip=set(provided))
    return tuple(PythonPackage(name=n, version=installed[n]) for n in sorted(found))


def with_requirements(
    names: Iterable[str],
    installed: Mapping[str, str],
    requires: Mapping[str, Iterable[str]],
    skip: set[str] | frozenset[str] = frozenset(),
) -> set[str]:
    """`names` and, transitively, the installed distributions they require (all canonical),
    leaving out `skip` and what is not installed."""
    found: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in found or name in skip or name not in installed:
            continue
        found.add(name)
        for line in requires.get(name, ()):
            required = requirement_name(line)
            if required is not None:
                pending.append(required)
    return found


def package_blob_key(package: PythonPackage, python_version: str, platform: str) -> str:
    """Where the built package lives in the BlobStore: one archive per name, version,
    Python version and platform."""
    safe_platform = re.sub(r"[^A-Za-z0-9_.-]+", "_", platform)
    archive = f"{package.name}-{package.version}.tar.gz"
    return f"{PACKAGES_PREFIX}py{python_version}/{safe_platform}/{archive}"


def environment_id(keys: Iterable[str]) -> str:
    """A short name for one set of built packages: jobs with the same set share it."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]
