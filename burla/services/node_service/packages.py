"""A node's cache of built packages, and the folders that put a job's set on a worker's path.

Layout, under the node's package directory (shared by the nodes of one machine):

    unpacked/py3.11/linux-x86_64/iniconfig-2.3.1/   one archive from the BlobStore, unpacked
    envs/<environment id>/iniconfig -> ../../unpacked/.../iniconfig-2.3.1/iniconfig

An environment folder holds relative links to the top-level entries of each of its
packages (namespace packages several share are merged), so the folder works wherever the
whole directory is mounted (a Docker volume at the same path). Archives are unpacked and
folders built under temporary names and renamed into place: a reader sees all or nothing.
A repeat job with the same set finds its folder in memory: no download, no disk access.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path

import anyio.to_thread

from burla.core.environment import PACKAGES_PREFIX, environment_id
from burla.core.protocols import BlobStore
from burla.services.node_service.package_pruning import Pruned, mark_used, prune


class PackageCache:
    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = Path(root)
        self.blobs = blobs
        self._ready: dict[str, Path] = {}
        self.grown = (self.root / "unpacked").is_dir()
        """Whether packages were unpacked since the last prune (or may have been, by an
        earlier node on this machine): a prune with nothing new has nothing to do."""

    async def environment(self, keys: Sequence[str]) -> Path:
        """The folder to put on a worker's path for the packages archived at `keys`."""
        env_id = environment_id(keys)
        folder = self._ready.get(env_id)
        if folder is None:
            folder = self.root / "envs" / env_id
            if not folder.is_dir():
                for key in keys:
                    await self._unpack(key)
                packages = [self.unpacked(k) for k in keys]
                await anyio.to_thread.run_sync(self._link, folder, packages)
            self._ready[env_id] = folder
        mark_used([folder, *(self.unpacked(key) for key in keys)])
        return folder

    async def prune(self, limit_bytes: int, in_use: Collection[Path] = ()) -> Pruned:
        """Keep the unpacked packages within `limit_bytes` (see package_pruning)."""
        self.grown = False
        pruned, gone = await anyio.to_thread.run_sync(prune, self.root, limit_bytes, in_use)
        self._ready = {env: folder for env, folder in self._ready.items() if folder not in gone}
        return pruned

    def unpacked(self, key: str) -> Path:
        """Where the archive at `key` is unpacked."""
        name = key.removeprefix(PACKAGES_PREFIX).removesuffix(".tar.gz")
        return self.root / "unpacked" / name

    async def _unpack(self, key: str) -> None:
        directory = self.unpacked(key)
        if directory.is_dir():
            return
        archive = await self.blobs.get(key)
        self.grown = True
        await anyio.to_thread.run_sync(_extract, archive, directory)

    def _link(self, folder: Path, packages: list[Path]) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = _building(folder)
        try:
            for package in packages:
                _link_entries(package, building)
            _rename_into_place(building, folder)
        finally:
            shutil.rmtree(building, ignore_errors=True)


def _extract(archive: bytes, directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    building = _building(directory)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            tar.extractall(building, filter="data")
        _rename_into_place(building, directory)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _building(final: Path) -> Path:
    """A new folder beside `final` to build it in, readable by workers of any user (a
    cloud node's run as one of their own)."""
    building = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    building.chmod(0o755)
    return building


def _rename_into_place(building: Path, final: Path) -> None:
    try:
        os.rename(building, final)
    except OSError:
        if not final.is_dir():
            raise
        # Another node of this machine put the same one in place first; that one serves.


def _link_entries(source: Path, target: Path) -> None:
    """Link each entry of `source` into `target`. Where two packages have a directory of the
    same name (a namespace package), it becomes a real directory of links to both."""
    for entry in sorted(source.iterdir()):
        place = target / entry.name
        if place.is_symlink() and entry.is_dir() and place.is_dir():
            earlier = place.resolve()
            place.unlink()
            place.mkdir()
            _link_entries(earlier, place)
            _link_entries(entry, place)
        elif place.is_dir() and not place.is_symlink() and entry.is_dir():
            _link_entries(entry, place)
        elif not place.exists() and not place.is_symlink():
            # Relative, and the same from the folder's temporary name and its final one.
            place.symlink_to(os.path.relpath(entry, target))
