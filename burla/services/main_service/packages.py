"""The package builder: each package version a job needs is installed once per cluster.

pip installs it (without its dependencies: the client sent the whole pinned set) into a
directory of its own, for the containers' Python; the directory goes to the BlobStore as
one archive per name, version, Python version and platform. The Store holds a claim per
archive, so that concurrent jobs (even through other main_services) build it once: the
first writes "building", the others wait for "built" or "failed". A failed build is
tried again by the next job that needs it (the index may have been down).

The archives stay for later jobs within a size ($BURLA_PACKAGES_MAX_GB): after each
build, and when the cluster's admin prunes, the least recently used go until the rest
fit; never one a running job needs, or one a job asked for in the last JUST_USED_S (it
may not be running yet). A claim records its archive's size and, to the hour, its last
use; it goes before its archive, so that no job is ever sent to a missing one.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from burla.core.clock import Clock
from burla.core.environment import (
    PACKAGES_LIMIT_BYTES,
    PACKAGES_PREFIX,
    PythonPackage,
    package_blob_key,
)
from burla.core.errors import (
    BurlaError,
    ConflictError,
    PackageInstallError,
    SourceNotKeptError,
)
from burla.core.protocols import BlobStore, Document, Store

BUILD_TIMEOUT_S = 600.0
"""A claim older than this belongs to a builder that died: another may take it over."""
WAIT_POLL_S = 0.2
MESSAGE_LINES = 15
"""The installer's last lines quoted in a PackageInstallError."""
USE_NOTED_EVERY_S = 3600.0
"""How often a claim's last use is written: least recently used, to the hour."""
JUST_USED_S = 600.0


@dataclass(frozen=True)
class PrunedArchives:
    removed: tuple[str, ...]
    """The archives' keys."""
    freed_bytes: int
    kept_bytes: int


class PackageBuilder:
    def __init__(
        self,
        store: Store,
        blobs: BlobStore,
        clock: Clock,
        *,
        limit_bytes: int = PACKAGES_LIMIT_BYTES,
        in_use: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        """`in_use` gives the archives running jobs need."""
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self.limit_bytes = limit_bytes
        self.in_use = in_use
        self.platform = sysconfig.get_platform()
        self._built: set[str] = set()
        """Archives known to be in the BlobStore: a repeat job reads nothing."""
        self._asked: dict[str, float] = {}
        """When a job last asked for each archive (by this main_service)."""
        self._noted: dict[str, float] = {}
        """When each archive's last use was last written to its claim."""

    async def ensure(
        self,
        packages: Sequence[PythonPackage],
        python_version: str,
        sources: Mapping[str, str] | None = None,
    ) -> tuple[str, ...]:
        """The BlobStore keys of the packages' archives, built first where missing. Raises
        PackageInstallError naming every package that could not be installed. `sources`
        names the uploaded archives of those sent as source, by requirement."""
        sources = sources or {}
        keys = tuple(package_blob_key(p, python_version, self.platform) for p in packages)
        self._asked.update(dict.fromkeys(keys, self.clock.now()))
        missing = [(p, k) for p, k in zip(packages, keys, strict=True) if k not in self._built]
        if not missing:
            await self._note_use(keys)
            return keys
        failures: list[PackageInstallError] = []

        async def ensure_one(package: PythonPackage, key: str) -> None:
            try:
                await self._ensure(package, key, python_version, sources.get(package.requirement))
            except PackageInstallError as error:
                failures.append(error)

        async with anyio.create_task_group() as group:
            for package, key in missing:
                group.start_soon(ensure_one, package, key)
        if failures:
            only_sources = all(isinstance(f, SourceNotKeptError) for f in failures)
            error = SourceNotKeptError if only_sources else PackageInstallError
            raise error("\n\n".join(sorted(map(str, failures))))
        await self._note_use(keys)
        # The Store or blob store failing for a while leaves it to the next build.
        with contextlib.suppress(BurlaError):
            await self.prune(self.limit_bytes)
        return keys

    async def prune(self, limit_bytes: int) -> PrunedArchives:
        """Remove the least recently used archives until the rest take at most
        `limit_bytes`; never one in use or asked for in the last JUST_USED_S. Archives
        no claim names (their removal cut short) go too."""
        now = self.clock.now()
        claims = await self._claims()
        in_use = set(self.in_use())
        built = sorted(
            (self._last_use(doc), doc.key, int(doc.data.get("bytes", 0)), doc)
            for doc in claims.values()
            if doc.data.get("state") == "built"
        )
        kept = sum(size for _, _, size, _ in built)
        removed: list[str] = []
        for used, key, size, doc in built:
            if kept <= limit_bytes:
                break
            if key in in_use or now - used < JUST_USED_S:
                continue
            try:
                await self.store.delete(key, if_version=doc.version)
            except ConflictError:
                continue  # used or rebuilt meanwhile
            self._built.discard(key)
            await self.blobs.delete_prefix(key)
            kept -= size
            removed.append(key)
        for key in await self.blobs.list(PACKAGES_PREFIX):
            if key not in claims:
                await self.blobs.delete_prefix(key)
        freed = sum(int(claims[key].data.get("bytes", 0)) for key in removed)
        return PrunedArchives(tuple(removed), freed, kept)

    async def _claims(self) -> dict[str, Document]:
        claims: dict[str, Document] = {}
        while page := await self.store.list(PACKAGES_PREFIX, after=max(claims, default="")):
            claims.update((doc.key, doc) for doc in page)
        return claims

    def _last_use(self, claim: Document) -> float:
        return max(_stored_use(claim), self._asked.get(claim.key, -math.inf))

    async def _note_use(self, keys: Sequence[str]) -> None:
        """Write when the archives were last used into their claims, once an hour."""
        now = self.clock.now()
        for key in keys:
            if now - self._noted.get(key, -math.inf) < USE_NOTED_EVERY_S:
                continue
            self._noted[key] = now
            doc = await self.store.get(key)
            if doc is None or doc.data.get("state") != "built":
                continue
            with contextlib.suppress(ConflictError):  # rebuilt or removed meanwhile
                await self.store.put(key, {**doc.data, "used_at": now}, if_version=doc.version)

    async def _ensure(
        self, package: PythonPackage, key: str, python_version: str, source: str | None
    ) -> None:
        waited = False
        while True:
            doc = await self.store.get(key)
            state = doc.data.get("state") if doc is not None else None
            if doc is not None and state == "built":
                self._built.add(key)
                self._noted[key] = _stored_use(doc)
                return
            if state == "failed" and waited:  # the build this job waited for
                raise PackageInstallError(str(doc.data.get("message")) if doc else "")
            stale = (
                doc is not None and self.clock.now() - float(doc.data["since"]) > BUILD_TIMEOUT_S
            )
            if doc is None or state == "failed" or stale:
                claim = {"state": "building", "since": self.clock.now()}
                try:
                    mine = await self.store.put(
                        key, claim, if_version=0 if doc is None else doc.version
                    )
                except ConflictError:
                    continue  # another builder claimed it first: wait for that one
                await self._build_and_store(package, key, python_version, source, mine.version)
                self._built.add(key)
                return
            waited = True
            await anyio.sleep(WAIT_POLL_S)

    async def _build_and_store(
        self,
        package: PythonPackage,
        key: str,
        python_version: str,
        source: str | None,
        claim_version: int,
    ) -> None:
        try:
            if source is not None:  # sent by the client as it is: stored as it is
                archive = await self.blobs.get(source)
            elif package.from_source:
                raise SourceNotKeptError(
                    f"{package.name} (an editable install, version {package.version}) is "
                    "sent as source, but this job did not bring it and the cluster does not "
                    "have it (any more: packages are kept within BURLA_PACKAGES_MAX_GB); "
                    "run the job again from a new process"
                )
            else:
                archive = await install(package, python_version)
        except PackageInstallError as error:
            failed = {"state": "failed", "since": self.clock.now(), "message": str(error)}
            await self.store.put(key, failed, if_version=claim_version)
            raise
        await self.blobs.put(key, archive)
        now = self.clock.now()
        built = {"state": "built", "since": now, "used_at": now, "bytes": len(archive)}
        await self.store.put(key, built, if_version=claim_version)
        self._noted[key] = now


async def install(package: PythonPackage, python_version: str) -> bytes:
    """The package installed for `python_version`, as a gzipped tar of its directory."""
    with tempfile.TemporaryDirectory(prefix="burla-build-") as temporary:
        target = Path(temporary) / "target"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-input",
            "--disable-pip-version-check",
            "--target",
            str(target),
            "--python-version",
            python_version,
            package.requirement,
        ]
        try:
            result = await anyio.run_process(command, check=False)
        except OSError as error:
            raise PackageInstallError(
                f"could not install {package.requirement} on the cluster: the installer "
                f"did not start ({error}); the cluster's Python needs pip"
            ) from error
        if result.returncode != 0:
            said = result.stderr.decode(errors="replace").strip().splitlines()[-MESSAGE_LINES:]
            raise PackageInstallError(
                f"could not install {package.requirement} on the cluster for Python "
                f"{python_version}; pip said:\n" + "\n".join(said) + "\nCheck that this "
                "version exists on the package index, or install one that does locally."
            )
        return await anyio.to_thread.run_sync(_archive, target)


def _stored_use(claim: Document) -> float:
    """When a built archive was last used, as its claim says."""
    return float(claim.data.get("used_at") or claim.data["since"])


def _archive(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in sorted(directory.iterdir()):
            tar.add(entry, arcname=entry.name)
    return buffer.getvalue()
