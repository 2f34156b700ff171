"""The worker environment links what importlib.metadata says the worker distributions and
their requirements install, though it reads their RECORD and METADATA as plain text."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from burla.backends.local import envs
from burla.core.environment import WORKER_DISTRIBUTIONS


def sources_by_importlib() -> dict[str, Path]:
    """worker_sources as importlib.metadata's own `requires` and `files` give it."""
    names, pending = [], list(WORKER_DISTRIBUTIONS)
    while pending:
        name = envs._canonical(pending.pop(0))
        if name in names:
            continue
        names.append(name)
        for requirement in importlib.metadata.requires(name) or []:
            match = envs._REQUIREMENT_NAME.match(requirement)
            if "extra ==" not in requirement and match and envs._installed(match[0]):
                pending.append(match[0])
    sources = {"burla": Path(envs.__file__).resolve().parents[2]}
    for name in names:
        dist = importlib.metadata.distribution(name)
        entries = set()
        for file in dist.files or []:
            first = file.parts[0]
            # A package directory (not .dist-info, not ../bin), or a single-file module.
            package = len(file.parts) > 1 and first != "__pycache__" and "." not in first
            module = len(file.parts) == 1 and file.suffix in (".py", ".so", ".pyd")
            if package or module:
                entries.add(first)
        for entry in entries:
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.exists():
                sources[entry] = path
    return dict(sorted(sources.items()))


def test_worker_sources_are_what_importlib_metadata_lists():
    sources = envs.worker_sources()
    assert sources == sources_by_importlib()
    assert {"burla", "cloudpickle", "tblib", "httpx", "rich"} <= set(sources)


def test_requirements_are_read_from_the_metadata_headers_only():
    class Metadata(importlib.metadata.Distribution):
        def read_text(self, filename: str) -> str | None:
            if filename != "METADATA":
                return None
            return (
                "Metadata-Version: 2.1\r\nName: x\r\nRequires-Dist: a>=1\r\n"
                "requires-dist: b ; extra == 'c'\r\n\r\nRequires-Dist: not-a-header\r\n"
            )

        def locate_file(self, path):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    assert envs._requirements(Metadata()) == ["a>=1", "b ; extra == 'c'"]
