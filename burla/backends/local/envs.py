"""The default worker environment: a venv that sees burla's worker dependencies and nothing else.

Workers must not see the packages of whoever started the cluster: environment replication
adds those explicitly, per job. So the default environment is a real venv (no system
site-packages, no pip) whose site-packages holds one `.pth` file naming a directory of
symlinks: the `burla` package and the top-level modules of cloudpickle and tblib, taken
from the interpreter that builds it. Building takes milliseconds: nothing is installed or
downloaded.

Layout, under `root/"envs"/"default-<hash>"`:

    bin/python                 the venv's interpreter (a symlink to the base interpreter)
    lib/pythonX.Y/site-packages/burla-worker.pth   -> ../../../worker-packages
    worker-packages/burla      -> the burla package directory
    worker-packages/cloudpickle, worker-packages/tblib, ...

The hash covers the Python version, the base interpreter and every linked source path, so
a new interpreter or a moved checkout gets a new environment and an old one is never
reused by mistake. The `.pth` line is relative, so the directory can be built under a
temporary name and renamed into place: a reader sees either no environment or a whole one.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import types
import venv
from pathlib import Path
from typing import TYPE_CHECKING

from burla.core.environment import WORKER_DISTRIBUTIONS
from burla.core.errors import BackendError

if TYPE_CHECKING:
    from importlib.metadata import Distribution

LOCAL_DEFAULT_IMAGE = "local-default"
"""The image name of the default worker environment in the local backend."""

_LAYOUT_VERSION = "2"  # bump when the layout below changes, so old environments are not reused
_PACKAGES_DIR = "worker-packages"
_PTH_NAME = "burla-worker.pth"
_BURLA = Path(__file__).resolve().parents[2]
"""The burla package directory: this module is burla/backends/local/envs.py."""


def ensure_worker_env(root: Path) -> Path:
    """The python executable of the default worker environment under `root`, built if missing.

    Safe to call from several processes at once: each builds under a temporary name and
    renames it into place; whoever loses the race uses the winner's environment.
    """
    sources = worker_sources()
    env_dir = Path(root) / "envs" / f"default-{_fingerprint(sources)}"
    python = env_dir / "bin" / "python"
    if env_dir.is_dir():
        return python
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{env_dir.name}-", dir=env_dir.parent))
    try:
        _build(building, sources)
        try:
            os.rename(building, env_dir)
        except OSError:
            if not env_dir.is_dir():
                raise
            # Another process renamed its build into place first; use that one.
    except OSError as error:
        raise BackendError(
            f"could not build the worker environment at {env_dir}: {error}; "
            f"check that {root} is writable and has free space"
        ) from error
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return python


def build_worker_env(env_dir: Path) -> None:
    """A worker environment like the default one, at `env_dir` (which must not exist),
    for a custom image to install more into."""
    _build(env_dir, worker_sources())


def worker_sources() -> dict[str, Path]:
    """What the worker environment links, by the name it gets there: `burla` and the
    top-level modules and packages of each of WORKER_DISTRIBUTIONS and what they require.

    Every node works this out as it boots, before it starts its workers, so the installed
    distributions' RECORD and METADATA files are read as plain text (importlib.metadata's
    own `files` and `requires` make a path object of every file listed and parse the
    metadata as e-mail: five times slower, on a cold start's path)."""
    sources = {"burla": _BURLA}
    for distribution in _with_requirements(WORKER_DISTRIBUTIONS):
        sources.update(_top_level_entries(distribution))
    return dict(sorted(sources.items()))


def _with_requirements(names: tuple[str, ...]) -> list[str]:
    """`names` and, transitively, the installed distributions they require (extras aside)."""
    found: list[str] = []
    pending = list(names)
    while pending:
        name = _canonical(pending.pop(0))
        if name in found:
            continue
        found.append(name)
        dist = _distribution(name)
        if dist is None:
            continue  # reported, with a hint, when its files are looked up
        for requirement in _requirements(dist):
            if "extra ==" in requirement:
                continue
            match = _REQUIREMENT_NAME.match(requirement)
            if match and _installed(match[0]):
                pending.append(match[0])
    return found


_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _requirements(dist: Distribution) -> list[str]:
    """The Requires-Dist lines of a distribution's metadata (importlib.metadata's
    `requires`, for a .dist-info), read from its headers."""
    text = dist.read_text("METADATA")
    if text is None:
        return dist.requires or []  # an .egg-info: its requires.txt
    headers = text.replace("\r\n", "\n").split("\n\n", 1)[0]
    field = "requires-dist:"
    return [
        line[len(field) :].strip()
        for line in headers.splitlines()
        if line[: len(field)].lower() == field
    ]


def _file_paths(dist: Distribution) -> list[str] | None:
    """The paths a distribution's RECORD lists (importlib.metadata's `files`, as text),
    or those of `files` for one without a RECORD; None if it lists none."""
    record = dist.read_text("RECORD")
    if record is None:
        return None if dist.files is None else [file.as_posix() for file in dist.files]
    return [row[0] for row in csv.reader(record.splitlines()) if row]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(name: str) -> bool:
    return _distribution(name) is not None


def _distribution(name: str) -> Distribution | None:
    """The installed distribution `name`, if there is one. importlib.metadata is loaded
    here, not with this module: a local node, told its workers' python by main_service,
    boots without it."""
    from importlib import metadata

    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _top_level_entries(name: str) -> dict[str, Path]:
    """The installed top-level packages (directories) and modules (files) of a distribution."""
    dist = _distribution(name)
    if dist is None:
        raise BackendError(
            f"the worker environment needs {name!r}, which is not installed next to burla; "
            f"install it with `pip install {name}`"
        )
    entries: set[str] = set()
    paths = _file_paths(dist)
    if paths is not None:
        for path in paths:
            parts = [part for part in path.split("/") if part not in ("", ".")]
            if not parts:
                continue
            first = parts[0]
            if len(parts) > 1 and first not in ("..", "__pycache__") and "." not in first:
                entries.add(first)  # a package directory
            elif len(parts) == 1 and os.path.splitext(first)[1] in (".py", ".so", ".pyd"):
                entries.add(first)  # a single-file module or extension
    else:
        for module in (dist.read_text("top_level.txt") or "").split():
            entries.update(
                candidate
                for candidate in (module, f"{module}.py")
                if Path(str(dist.locate_file(candidate))).exists()
            )
    found = {entry: Path(str(dist.locate_file(entry))).resolve() for entry in entries}
    found = {entry: path for entry, path in found.items() if path.exists()}
    if not found:
        raise BackendError(
            f"found no importable files of {name!r} to link into the worker environment; "
            f"reinstall it with `pip install --force-reinstall {name}`"
        )
    return found


def _fingerprint(sources: dict[str, Path]) -> str:
    text = "\n".join(
        [
            _LAYOUT_VERSION,
            sys.version,
            os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
            *(f"{name}={path}" for name, path in sources.items()),
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _build(env_dir: Path, sources: dict[str, Path]) -> None:
    _WorkerEnvBuilder().create(env_dir)
    packages = env_dir / _PACKAGES_DIR
    packages.mkdir()
    for name, source in sources.items():
        (packages / name).symlink_to(source, target_is_directory=source.is_dir())
    site_packages = Path(sysconfig.get_path("purelib", scheme="venv", vars={"base": str(env_dir)}))
    (site_packages / _PTH_NAME).write_text(os.path.relpath(packages, site_packages) + "\n")


class _WorkerEnvBuilder(venv.EnvBuilder):
    """A venv without pip and without activate scripts (they would name the temporary
    directory the environment is built in)."""

    def __init__(self) -> None:
        super().__init__(with_pip=False, symlinks=True)

    def setup_scripts(self, context: types.SimpleNamespace) -> None:
        pass
