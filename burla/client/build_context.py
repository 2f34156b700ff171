"""A Dockerfile's build context: the directory its COPY and ADD read, sent as one archive.

The archive is a gzipped tar of every file under the directory, in sorted order, with no
time in the gzip header, so the same files give the same bytes: the cluster builds an
image once per Dockerfile and context.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from burla.core.errors import InvalidRequestError

CONTEXT_LIMIT = 1 << 30
"""The largest archive a build context may make (1 GiB)."""


def context_archive(directory: str) -> bytes:
    """The archive of `directory` (see module doc); InvalidRequestError if it is no
    directory or makes an archive over CONTEXT_LIMIT."""
    root = Path(directory)
    if not root.is_dir():
        raise InvalidRequestError(
            f"build_context={directory!r} is not a directory; name the directory whose "
            "files the Dockerfile's COPY and ADD read"
        )
    import tarfile  # here: most jobs bring no build context, and it is slow to load

    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
            if buffer.tell() > CONTEXT_LIMIT:
                break
    if buffer.tell() > CONTEXT_LIMIT:
        raise InvalidRequestError(
            f"build_context={directory!r} makes an archive over {CONTEXT_LIMIT >> 30} GiB; "
            "build from a directory that holds only what the image needs"
        )
    return buffer.getvalue()
