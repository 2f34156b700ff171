"""Packages no index has, packed as source archives for the cluster.

An editable install's code as it is on disk now, or a distribution installed from a
directory or a VCS checkout, cannot be installed on the cluster by name and version, so
its top-level modules are sent themselves: a gzipped tar of each package directory (or
module file), laid out like an installed package, versioned by a hash of its files. The
cluster keeps it like any built package, so it is sent again only when a file changes.
Functions of editable modules travel by value anyway; the archive is what makes `import
mylib` inside the function (or in other modules) work on the cluster.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import os
import site
import sys
from collections.abc import Set as AbstractSet
from pathlib import Path
from types import ModuleType
from urllib.parse import unquote, urlsplit

from burla.client.serialize import is_own_code
from burla.core.environment import SOURCE_LABEL, PythonPackage, canonical_name


def source_packages(names: AbstractSet[str]) -> dict[PythonPackage, bytes]:
    """Archives of the editable installs among the modules named `names`."""
    own = [
        module
        for name in names
        if name != "__main__" and (module := sys.modules.get(name)) is not None
        if is_own_code(module)
    ]
    if not own:
        return {}
    found: dict[PythonPackage, bytes] = {}
    projects = editable_projects()
    for module in own:
        listed = [project for project in projects if module.__name__ in project[3]]
        source = _source_of(module) if listed else None
        for name, version, root, _ in listed:
            if source is not None and source.is_relative_to(root):
                digest, archive = pack(source)
                found[PythonPackage(name, f"{version}{SOURCE_LABEL}{digest}")] = archive
                break
    return found


def installed_sources(package: PythonPackage, modules: list[str]) -> dict[PythonPackage, bytes]:
    """Archives of the top-level `modules` of a distribution no index has (installed from
    a directory or a VCS checkout), as they are installed here."""
    found: dict[PythonPackage, bytes] = {}
    for module in modules:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            source = Path(next(iter(spec.submodule_search_locations))).resolve()
        elif spec.origin and spec.has_location:
            source = Path(spec.origin).resolve()
        else:
            continue
        digest, archive = pack(source)
        found[PythonPackage(package.name, f"{package.version}{SOURCE_LABEL}{digest}")] = archive
    return found


@functools.cache
def editable_projects(
    site_dirs: tuple[str, ...] | None = None,
) -> tuple[tuple[str, str, Path, frozenset[str]], ...]:
    """Editable installs (PEP 660 / 610) of these site directories: name, version, the
    project directory (from each dist-info's direct_url.json) and its top-level modules
    (from top_level.txt, else the one named like the distribution): the project directory
    may hold more (tests, scripts) that are not part of it."""
    if site_dirs is None:
        site_dirs = (*site.getsitepackages(), site.getusersitepackages())
    found = []
    for directory in site_dirs:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith(".dist-info"):
                continue
            try:
                origin = json.loads(Path(directory, entry, "direct_url.json").read_text())
            except (OSError, ValueError):
                continue
            url = str(origin.get("url", ""))
            if not origin.get("dir_info", {}).get("editable") or not url.startswith("file:"):
                continue
            name, _, version = entry.removesuffix(".dist-info").partition("-")
            try:
                top_level = Path(directory, entry, "top_level.txt").read_text().split()
            except OSError:
                top_level = [canonical_name(name).replace("-", "_")]
            root = Path(unquote(urlsplit(url).path)).resolve()
            found.append((canonical_name(name), version, root, frozenset(top_level)))
    return tuple(found)


def _source_of(module: ModuleType) -> Path | None:
    """The package directory or module file a top-level module was imported from."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    return path.parent if path.name == "__init__.py" else path


_packed: dict[Path, tuple[tuple[tuple[str, int, int], ...], tuple[str, bytes]]] = {}
"""The last archive of each source, with the names, sizes and times of its files then."""


def pack(source: Path) -> tuple[str, bytes]:
    """A hash of the source's files and a gzipped tar of them (without __pycache__);
    packed again only when a file changed."""
    files = [source] if source.is_file() else sorted(_files_under(source))
    stats = tuple((str(f), (s := f.stat()).st_size, s.st_mtime_ns) for f in files)
    cached = _packed.get(source)
    if cached is not None and cached[0] == stats:
        return cached[1]
    _packed[source] = (stats, packed := _pack(source, files))
    return packed


def _pack(source: Path, files: list[Path]) -> tuple[str, bytes]:
    import tarfile  # here: most calls send no source, and it is slow to load

    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for file in files:
            name = file.relative_to(source.parent).as_posix()
            data = file.read_bytes()
            digest.update(f"{name}\0{len(data)}\0".encode())
            digest.update(data)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return digest.hexdigest()[:16], buffer.getvalue()


def _files_under(directory: Path) -> list[Path]:
    files = []
    for parent, subdirectories, names in os.walk(directory):
        subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
        files += [Path(parent, name) for name in names if not name.endswith((".pyc", ".pyo"))]
    return files
