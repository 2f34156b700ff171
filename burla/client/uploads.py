"""What a job sends to the cluster: its request's frames, and the parts too big for the
request (the function, big inputs, source archives) put in the blob store through signed
URLs, so that services never carry big payloads. A big input is named in the request by
its key and the digest of its bytes (burla.core.resume), which the cluster keeps: what a
job that resumes this one is compared with."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, cast

from burla.client.connection import Connection
from burla.client.fit import FUNCTION
from burla.core import wire
from burla.core.errors import BackendError, PayloadTooLargeError
from burla.core.limits import MAX_UPLOADS
from burla.core.resume import DIGEST_SIZE, input_digest

UPLOAD_THREADS = 4
"""Big inputs pickled and uploaded side by side (writing to disk or a socket frees the GIL)."""

Payload = bytes | Callable[[IO[bytes]], None]
"""An input pickled in memory, or, for one known to be big, what pickles it into a file:
straight into the blob store, without a copy in memory first."""


def max_payload() -> int:
    return int(os.environ.get("BURLA_MAX_PAYLOAD_MB", "1024")) << 20


def check_size(what: str, size: int, limit: int | None = None) -> None:
    """PayloadTooLargeError for `size` bytes over `limit` (default: max_payload())."""
    limit = max_payload() if limit is None else limit
    if size > limit:
        raise PayloadTooLargeError(
            f"{what} pickles to {size / 2**20:.1f} MB, over the {limit >> 20} MB limit "
            "(BURLA_MAX_PAYLOAD_MB); pass a path or URL and load the data inside the function"
        )


def job_request(
    connection: Connection,
    head: dict[str, Any],
    function: bytes,
    payloads: Sequence[Payload],
    moved: set[int],
) -> bytes:
    """The frames of a job's request: its head, function and inputs. The parts in `moved`
    (input indices, or FUNCTION) are uploaded first and named in the request by key."""
    keys: dict[int, str] = {}
    digests: dict[int, bytes] = {}
    if moved:
        big = sorted(moved - {FUNCTION})
        targets = upload_targets(connection, len(moved), head["job_id"])
        if FUNCTION in moved:
            key, url = targets.pop()
            put_signed(url, function)
            head["function_key"] = key
        sent = _upload_inputs(payloads, big, [url for _, url in targets])
        keys = {n: key for n, (key, _) in zip(big, targets, strict=True)}
        digests = dict(zip(big, sent, strict=True))
    return job_body(head, b"" if FUNCTION in moved else function, payloads, keys, digests)


def job_body(
    head: dict[str, Any],
    function: bytes,
    payloads: Sequence[Payload],
    keys: dict[int, str],
    digests: dict[int, bytes] | None = None,
) -> bytes:
    """A job's request: its head and function, then its inputs. One uploaded (in `keys`)
    is named by key, with its digest (in `digests`), in a frame of its own; the others go
    in runs of inputs that follow one another, a frame per run, which says where the run
    starts and each one's size."""
    frames: list[tuple[dict[str, Any], bytes]] = [(head, function)]
    run: list[bytes] = []
    for n, payload in enumerate(payloads):
        if n in keys:
            if run:
                frames.append(_run_frame(n - len(run), run))
                run = []
            named: dict[str, Any] = {"i": n, "blob": keys[n]}
            if digests and n in digests:
                named["digest"] = digests[n].hex()
            frames.append((named, b""))
        else:
            assert isinstance(payload, bytes)
            run.append(payload)
    if run:
        frames.append(_run_frame(len(payloads) - len(run), run))
    return wire.encode_many(frames)


def _run_frame(first: int, run: list[bytes]) -> tuple[dict[str, Any], bytes]:
    return {"from": first, "sizes": [len(payload) for payload in run]}, b"".join(run)


def _upload_inputs(payloads: Sequence[Payload], indices: list[int], urls: list[str]) -> list[bytes]:
    """Upload the inputs of `indices`; the digest of each one's bytes."""
    from concurrent.futures import ThreadPoolExecutor  # here: only big inputs need it

    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="burla-upload") as pool:
        sent = [
            pool.submit(upload, url, payloads[n], f"input {n}")
            for n, url in zip(indices, urls, strict=True)
        ]
        return [done.result() for done in sent]


def upload_sources(connection: Connection, sources: dict[str, bytes]) -> dict[str, str]:
    """Upload source archives; their blob keys by requirement."""
    targets = upload_targets(connection, len(sources))
    keys = {}
    for (requirement, archive), (key, url) in zip(sources.items(), targets, strict=True):
        put_signed(url, archive)
        keys[requirement] = key
    return keys


def upload_targets(
    connection: Connection, count: int, job_id: str | None = None
) -> list[tuple[str, str]]:
    """`count` (key, signed URL) pairs to upload to, for job `job_id` (None: for no job
    in particular), asked for MAX_UPLOADS at a time."""
    targets: list[tuple[str, str]] = []
    for start in range(0, count, MAX_UPLOADS):
        wanted = min(MAX_UPLOADS, count - start)
        asked = {"count": wanted, "job_id": job_id, "first": start}
        uploads = connection.call("POST", "/uploads", json_body=asked).json()
        targets += zip(uploads["keys"], uploads["urls"], strict=True)
    return targets


def upload(url: str, payload: Payload, what: str) -> bytes:
    """Put an input where a signed URL says, pickling it on the way if it is a writer;
    the digest of its bytes."""
    if isinstance(payload, bytes):
        put_signed(url, payload)
        return input_digest(payload)
    if url.startswith("file://"):
        with _signed_file(url) as file:
            digesting = _Digesting(file)
            payload(cast(IO[bytes], digesting))  # pickling only writes to it
            check_size(what, file.tell())
            return digesting.digest()
    buffer = io.BytesIO()
    payload(buffer)
    check_size(what, buffer.tell())
    data = buffer.getvalue()
    put_signed(url, data)
    return input_digest(data)


class _Digesting(io.RawIOBase):
    """A file to write to that digests what passes on to `file` (as input_digest would
    digest it whole)."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__()
        self._file = file
        self._hash = hashlib.blake2b(digest_size=DIGEST_SIZE)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._hash.update(data)
        return self._file.write(data)

    def digest(self) -> bytes:
        return self._hash.digest()


@contextlib.contextmanager
def _signed_file(url: str) -> Iterator[IO[bytes]]:
    """The file a local cluster's signed URL names, written whole or not at all."""
    path = url.removeprefix("file://").split("?", 1)[0]
    temporary = f"{path}.upload"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(temporary, "wb") as file:
            yield file
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise BackendError(
                f"the disk that holds the cluster's blob store ({os.path.dirname(path)}) is "
                f"full ({error.strerror}); free space there (old jobs' inputs are in it), or "
                "pass paths instead of big inputs and read them inside the function"
            ) from error
        raise
    os.replace(temporary, path)


def put_signed(url: str, data: bytes) -> None:
    """Upload to a signed URL: over HTTP, or straight into a local cluster's directory."""
    if url.startswith("file://"):
        with _signed_file(url) as file:
            file.write(data)
        return
    import httpx  # only clusters with remote blob stores need it

    httpx.put(url, content=data, timeout=600).raise_for_status()
