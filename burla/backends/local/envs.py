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

import hashlib
import importlib.metadata
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import types
import venv
from pathlib import Path

from burla.core.environment import WORKER_DISTRIBUTIONS
from burla.core.errors import BackendError

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
    top-level modules and packages of each of WORKER_DISTRIBUTIONS."""
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
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # reported, with a hint, when its files are looked up
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            match = _REQUIREMENT_NAME.match(requirement)
            if match and _installed(match[0]):
                pending.append(match[0])
    return found


_REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _top_level_entries(name: str) -> dict[str, Path]:
    """The installed top-level packages (directories) and modules (files) of a distribution."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError as error:
        raise BackendError(
            f"the worker environment needs {name!r}, which is not installed next to burla; "
            f"install it with `pip install {name}`"
        ) from error
    entries: set[str] = set()
    if dist.files is not None:
        for file in dist.files:
            first = file.parts[0]
            if len(file.parts) > 1 and first not in ("..", "__pycache__") and "." not in first:
                entries.add(first)  # a package directory
            elif len(file.parts) == 1 and file.suffix in (".py", ".so", ".pyd"):
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
