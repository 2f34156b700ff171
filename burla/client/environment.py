"""The caller's environment, as a job needs it: installed packages its function imports.

Only distributions the pickled function names (and what they require) are sent, pinned
to the versions installed here, minus what every worker has. The caller's own modules
travel by value with the function (serialize.py); those of editable installs also go as
source archives (sources.py), so that importing them on the cluster works too.
A function that names no installed package costs a scan of its pickle and one look at
the site-packages directories, once per process.
"""

from __future__ import annotations

import functools
import json
import os
import site
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from burla.client.serialize import is_own_code
from burla.client.sources import installed_sources, source_packages
from burla.core.environment import (
    WORKER_DISTRIBUTIONS,
    PythonPackage,
    canonical_name,
    names_in_pickle,
    needed_packages,
    with_requirements,
)
from burla.release import DISTRIBUTION

_MODULE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")
_WORKER_MODULES = frozenset({"burla", *WORKER_DISTRIBUTIONS})
"""Modules every worker has, named by every pickle (cloudpickle) or often: left out before
any metadata is read. (Each of these distributions has one module of its own name.)"""


@dataclass(frozen=True)
class JobEnvironment:
    packages: tuple[PythonPackage, ...] = ()
    """What the job needs that the workers lack, pinned."""
    sources: dict[str, bytes] = field(default_factory=dict)
    """The archives of those sent as source (installed from no index), by requirement."""


def environment_for(function: bytes) -> JobEnvironment:
    """The packages the pickled function needs that the workers lack."""
    names = names_in_pickle(function)
    sources = source_packages(names)
    candidates = {
        name
        for name in names & _top_level_installed() - _WORKER_MODULES
        if not (name in sys.modules and is_own_code(sys.modules[name]))
    }
    if not candidates and not sources:
        return JobEnvironment()
    packages: tuple[PythonPackage, ...] = ()
    if candidates:
        installed, requires = _installed()
        needed = needed_packages(
            candidates, _distributions_of(), installed, requires, _worker_provided()
        )
        local = _not_on_an_index()
        packages = tuple(package for package in needed if package.name not in local)
        for package in needed:
            if package.name in local:  # no index has it: its installed files go instead
                sources |= installed_sources(package, _modules_of(package.name))
    return JobEnvironment(
        packages=(*packages, *sources),
        sources={package.requirement: archive for package, archive in sources.items()},
    )


@functools.cache
def _top_level_installed() -> frozenset[str]:
    """Names importable from site-packages, by a look at the directories themselves."""
    names: set[str] = set()
    for directory in {*site.getsitepackages(), site.getusersitepackages()}:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            stem = entry.split(".", 1)[0] if entry.endswith(_MODULE_SUFFIXES) else entry
            if "." not in stem and "-" not in stem:
                names.add(stem)
    return frozenset(names)


@functools.cache
def _distributions_of() -> Mapping[str, list[str]]:
    import importlib.metadata  # read only for a function that names an installed package

    return importlib.metadata.packages_distributions()


def _modules_of(distribution: str) -> list[str]:
    """The top-level modules of an installed distribution (canonical name)."""
    return [
        module
        for module, distributions in _distributions_of().items()
        if distribution in {canonical_name(d) for d in distributions}
    ]


@functools.cache
def _installed() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Installed distributions: canonical name -> version, and -> requirement lines."""
    import importlib.metadata

    versions: dict[str, str] = {}
    requires: dict[str, list[str]] = {}
    for dist in importlib.metadata.distributions():
        name = canonical_name(dist.metadata["Name"] or "")
        if name and dist.version and name not in versions:  # the first on sys.path wins
            versions[name] = dist.version
            requires[name] = dist.requires or []
    return versions, requires


@functools.cache
def _worker_provided() -> frozenset[str]:
    installed, requires = _installed()
    return frozenset(with_requirements((DISTRIBUTION, *WORKER_DISTRIBUTIONS), installed, requires))


@functools.cache
def _not_on_an_index() -> frozenset[str]:
    """Distributions installed from a local directory or a VCS checkout (PEP 610): no
    index has them at this version."""
    import importlib.metadata

    local: set[str] = set()
    for dist in importlib.metadata.distributions():
        text = dist.read_text("direct_url.json")
        if not text:
            continue
        try:
            origin = json.loads(text)
        except ValueError:
            continue
        if "dir_info" in origin or "vcs_info" in origin:
            local.add(canonical_name(dist.metadata["Name"] or ""))
    return frozenset(local)
