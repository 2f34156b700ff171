"""DirectoryBlobStore: the BlobStore protocol as files under one directory, with signed URLs.

The blob "a/b/c" is the file `root/a/b/c`. A write goes to a temporary file beside its
target (named with a reserved prefix that no key may use, so listings skip it) and is moved
into place with `os.replace`: a reader sees the old bytes or the new ones, never half.
Many processes may open stores on the same root at once.

Signed URLs look like `file:///abs/path?method=GET&expires=<t>&sig=<hmac>`, signed with
HMAC-SHA256 over the method, the expiry and the key. Every store opened on the same root
with the same secret verifies the others' URLs; `get_signed` and `put_signed` play the part
of the HTTP server that honours them.

This module imports only the standard library and burla.core's protocols, errors and clock:
workers load it in an environment that holds no other package.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Literal
from urllib.parse import quote, unquote

from burla.backends.signing import UrlSigner
from burla.core.clock import Clock, WallClock
from burla.core.errors import (
    BackendError,
    BurlaError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    SignedUrlError,
)

_WALL_CLOCK = WallClock()

_SCHEME = "file://"

_TEMP_PREFIX = ".burla-partial-"
"""Names of files being written start with this; no key segment may."""

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


def _write_bytes(fd: int, data: bytes) -> None:
    """Write all of `data` to the open file `fd`."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _key_problem(key: object) -> str | None:
    """Why `key` cannot name a blob, or None if it can."""
    if not isinstance(key, str):
        return f"is a {type(key).__name__}, not a str"
    if not key:
        return "is empty"
    if "\x00" in key:
        return "holds a NUL character"
    if key.startswith("/"):
        return "is an absolute path; keys are relative, like 'jobs/1/function.pkl'"
    try:
        key.encode()
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return f"has the path segment {segment!r}; segments must be non-empty and not . or .."
        if segment.startswith(_TEMP_PREFIX):
            return f"has a segment starting with {_TEMP_PREFIX!r}, which is reserved"
    return None


class DirectoryBlobStore:
    """The BlobStore protocol in a directory on this machine's disk.

    Calls do their file I/O directly, without a worker thread, so they also work from a
    plain thread's event loop.
    """

    def __init__(self, root: str | os.PathLike[str], secret: bytes, clock: Clock = _WALL_CLOCK):
        if not isinstance(secret, bytes) or not secret:
            raise InvalidRequestError(
                "the blob store's secret must be non-empty bytes (for example "
                "secrets.token_bytes(32)), shared by every process that checks its URLs"
            )
        self._root = os.path.realpath(os.fspath(root))
        self._signer = UrlSigner(secret, clock)
        self._clock = clock
        with self._os_errors("creating the blob directory"):
            os.makedirs(self._root, exist_ok=True)

    @property
    def root(self) -> str:
        return self._root

    async def put(self, key: str, data: bytes) -> None:
        self._check_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidRequestError(
                f"blob {key!r}: data is a {type(data).__name__}, not bytes; serialize it first"
            )
        with self._os_errors(f"writing blob {key!r}", key=key):
            self._write(self._path(key), bytes(data))

    async def get(self, key: str) -> bytes:
        self._check_key(key)
        with self._os_errors(f"reading blob {key!r}", key=key):
            try:
                return self._read(self._path(key))
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise NotFoundError(
                    f"there is no blob {key!r} in {self._root!r}: check the key, or put the "
                    "blob before reading it"
                ) from None

    async def list(self, prefix: str) -> list[str]:
        return sorted(self._keys(prefix))

    async def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        emptied: set[str] = set()
        with self._os_errors(f"deleting the blobs under {prefix!r}"):
            for key in self._keys(prefix):
                path = self._path(key)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue  # deleted by someone else meanwhile
                deleted += 1
                emptied.add(os.path.dirname(path))
            for directory in emptied:
                self._remove_empty_directories(directory)
        return deleted

    async def signed_url(self, key: str, *, method: Literal["GET", "PUT"], expires_s: float) -> str:
        self._check_key(key)
        query = self._signer.query(key, method, expires_s)
        return f"{_SCHEME}{quote(self._path(key))}?{query}"

    async def get_signed(self, url: str) -> bytes:
        """Do what an HTTP GET of a signed URL does: check the URL, then return the blob."""
        return await self.get(self._check_url(url, "GET"))

    async def put_signed(self, url: str, data: bytes) -> None:
        """Do what an HTTP PUT to a signed URL does: check the URL, then store the blob."""
        await self.put(self._check_url(url, "PUT"), data)

    # Files

    def _path(self, key: str) -> str:
        return os.path.join(self._root, key)

    def _check_key(self, key: str) -> None:
        problem = _key_problem(key)
        if problem is not None:
            raise InvalidRequestError(f"blob key {key!r} {problem}: use another key")

    def _read(self, path: str) -> bytes:
        with open(path, "rb") as file:
            return file.read()

    def _write(self, path: str, data: bytes) -> None:
        directory = os.path.dirname(path)
        for _ in range(5):
            os.makedirs(directory, exist_ok=True)
            temp = os.path.join(directory, f"{_TEMP_PREFIX}{secrets.token_hex(8)}")
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileNotFoundError:
                continue  # a delete_prefix removed the emptied directory: make it again
            break
        else:
            raise BackendError(
                f"the directory {directory!r} kept disappearing while a blob was written into "
                "it; another process is deleting that prefix over and over: stop it, then retry"
            )
        try:
            try:
                _write_bytes(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp)
            raise

    def _keys(self, prefix: str) -> Iterator[str]:
        """Every key that starts with `prefix`, in no particular order."""
        if not isinstance(prefix, str):
            raise InvalidRequestError(
                f"a blob prefix is a str, not a {type(prefix).__name__}: pass a str"
            )
        base_key, _, partial = prefix.rpartition("/")
        if base_key and _key_problem(base_key) is not None:
            return  # no valid key starts with this prefix
        pending = [(os.path.join(self._root, base_key), base_key, partial)]
        while pending:
            directory, directory_key, name_prefix = pending.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name.startswith(_TEMP_PREFIX) or not entry.name.startswith(name_prefix):
                    continue
                key = f"{directory_key}/{entry.name}" if directory_key else entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, key, ""))
                else:
                    yield key

    def _remove_empty_directories(self, directory: str) -> None:
        """Remove `directory` and its parents, up to the root, while they are empty."""
        while directory != self._root and directory.startswith(self._root):
            try:
                os.rmdir(directory)
            except OSError:  # not empty (or already gone): its parents are not ours to remove
                return
            directory = os.path.dirname(directory)

    @contextmanager
    def _os_errors(self, action: str, *, key: str | None = None) -> Iterator[None]:
        """Turn OSError into BackendError; with `key`, a file/directory clash into a conflict
        and a name too long into InvalidRequestError."""
        try:
            yield
        except BurlaError:
            raise
        except OSError as error:
            detail = error.strerror or str(error)
            if error.errno in _DISK_FULL:
                raise BackendError(
                    f"{action} failed: the disk that holds {self._root!r} is full ({detail}); "
                    "free disk space there (delete_prefix removes old blobs), then retry"
                ) from error
            if error.errno in _NO_PERMISSION:
                raise BackendError(
                    f"{action} failed: no permission ({detail}) on {error.filename!r}; let "
                    f"this process read and write everything under {self._root!r}"
                ) from error
            if key is not None and error.errno == errno.ENAMETOOLONG:
                raise InvalidRequestError(
                    f"{action} failed: the key {key!r} makes a file name or path longer than "
                    f"this file system allows under {self._root!r}; use a shorter key"
                ) from error
            if key is not None and error.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST):
                raise ConflictError(
                    f"{action} failed: in a directory blob store a key cannot be both a blob "
                    f"and a folder of other blobs, and {key!r} clashes with an existing key "
                    f"({detail}); use another key or delete the other one first"
                ) from error
            raise BackendError(
                f"{action} failed: {detail} ({error.filename!r}); check the directory "
                f"{self._root!r} and its disk, then retry"
            ) from error

    # Signed URLs

    def _check_url(self, url: str, method: Literal["GET", "PUT"]) -> str:
        """The key a signed URL grants `method` on; SignedUrlError if it grants nothing."""
        if not isinstance(url, str) or not url.startswith(_SCHEME):
            raise SignedUrlError(
                f"{url!r} is not a file:// signed URL from a DirectoryBlobStore; use the URL "
                "exactly as signed_url returned it"
            )
        quoted_path, _, query = url[len(_SCHEME) :].partition("?")
        path = unquote(quoted_path)
        root = os.path.join(self._root, "")
        if not path.startswith(root):
            raise SignedUrlError(
                f"signed URL for {path!r} is outside this store's directory {self._root!r}; "
                "check it with a store opened on the directory that signed it"
            )
        key = path[len(root) :]
        self._signer.verify(key, query, method)
        return key
