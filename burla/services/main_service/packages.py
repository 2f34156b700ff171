"""The package builder: each package version a job needs is installed once per cluster.

pip installs it (without its dependencies: the client sent the whole pinned set) into a
directory of its own, for the containers' Python; the directory goes to the BlobStore as
one archive per name, version, Python version and platform. The Store holds a claim per
archive, so that concurrent jobs (even through other main_services) build it once: the
first writes "building", the others wait for "built" or "failed". A failed build is
tried again by the next job that needs it (the index may have been down).
"""

from __future__ import annotations

import io
import sys
import sysconfig
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from burla.core.clock import Clock
from burla.core.environment import PythonPackage, package_blob_key
from burla.core.errors import ConflictError, PackageInstallError
from burla.core.protocols import BlobStore, Store

BUILD_TIMEOUT_S = 600.0
"""A claim older than this belongs to a builder that died: another may take it over."""
WAIT_POLL_S = 0.2
MESSAGE_LINES = 15
"""The installer's last lines quoted in a PackageInstallError."""


class PackageBuilder:
    def __init__(self, store: Store, blobs: BlobStore, clock: Clock) -> None:
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self.platform = sysconfig.get_platform()
        self._built: set[str] = set()
        """Archives known to be in the BlobStore: a repeat job reads nothing."""

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
        missing = [(p, k) for p, k in zip(packages, keys, strict=True) if k not in self._built]
        if not missing:
            return keys
        failures: list[str] = []

        async def ensure_one(package: PythonPackage, key: str) -> None:
            try:
                await self._ensure(package, key, python_version, sources.get(package.requirement))
            except PackageInstallError as error:
                failures.append(str(error))

        async with anyio.create_task_group() as group:
            for package, key in missing:
                group.start_soon(ensure_one, package, key)
        if failures:
            raise PackageInstallError("\n\n".join(sorted(failures)))
        return keys

    async def _ensure(
        self, package: PythonPackage, key: str, python_version: str, source: str | None
    ) -> None:
        waited = False
        while True:
            doc = await self.store.get(key)
            state = doc.data.get("state") if doc is not None else None
            if state == "built":
                self._built.add(key)
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
                raise PackageInstallError(
                    f"{package.name} (an editable install, version {package.version}) is "
                    "sent as source, but this job did not bring it and the cluster does not "
                    "have it; run the job again from a new process"
                )
            else:
                archive = await install(package, python_version)
        except PackageInstallError as error:
            failed = {"state": "failed", "since": self.clock.now(), "message": str(error)}
            await self.store.put(key, failed, if_version=claim_version)
            raise
        await self.blobs.put(key, archive)
        await self.store.put(
            key, {"state": "built", "since": self.clock.now()}, if_version=claim_version
        )


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


def _archive(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in sorted(directory.iterdir()):
            tar.add(entry, arcname=entry.name)
    return buffer.getvalue()
