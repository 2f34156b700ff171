"""The two requests of every job, served as plain ASGI: POST /jobs and GET /jobs/{id}/events.

A warm call of remote_parallel_map is one POST /jobs, answered once its results are in.
FastAPI's routing, dependency and middleware layers cost that call about a quarter of a
millisecond on the way in and again on the way out, so these two routes sit in front of
the framework; every other route goes on to it. Errors are answered as the framework's
routes answer them: JSON with the error's type and message.

Job bodies are frames (burla.core.wire): a pickled function or input travels as opaque
bytes and is never unpickled here.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from burla.core import stream_wire, wire
from burla.core.errors import BurlaError, InvalidRequestError, NotFoundError
from burla.core.trace import mark
from burla.services.errors import status_of
from burla.services.main_service.bearer import USER
from burla.services.main_service.service import MainService
from burla.services.main_service.users import may_see
from burla.services.store_keys import IN_BLOB, INLINE

FRAMES = "application/x-burla-frames"
MAX_WAIT_S = 30.0
EVENTS_WAIT_S = 10.0


class JobRoutes:
    def __init__(self, app: ASGIApp, service: MainService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == "/jobs":
                await self._answer(send, self._submit(scope, receive))
                return
            if method == "GET" and path.startswith("/jobs/") and path.endswith("/events"):
                job_id = path[len("/jobs/") : -len("/events")]
                if job_id and "/" not in job_id:
                    await self._answer(send, self._events(scope, job_id))
                    return
        await self.app(scope, receive, send)

    async def _submit(self, scope: Scope, receive: Receive) -> bytes:
        """Start a job. With `wait`, answer when the job is done or `wait` s have passed,
        with the job's events so far: a short job needs no second request."""
        mark("main_service reads the job")
        wait = _query(scope, "wait", float, 0.0)
        body = _job_body(await read_body(receive))
        function_key = body.header.get("function_key")
        if function_key:
            body.uploads.append(function_key)
        job_id = await self.service.submit(
            body.header["spec"],
            body.function or None,
            function_key,
            body.items,
            body.header.get("job_id"),
            body.uploads,
            owner=scope[USER],
            digests=body.digests,
        )
        return await self._stream(job_id, 0, wait, until_done=True)

    async def _events(self, scope: Scope, job_id: str) -> bytes:
        """Results and printed lines after `after`, waiting up to `wait` s for any."""
        after = _query(scope, "after", int, 0)
        wait = _query(scope, "wait", float, EVENTS_WAIT_S)
        if not may_see(scope[USER], self.service.job(job_id).owner):
            raise NotFoundError(f"no job {job_id} is running here; check the id with `burla jobs`")
        return await self._stream(job_id, after, wait)

    async def _stream(
        self, job_id: str, after: int, wait: float, *, until_done: bool = False
    ) -> bytes:
        run = self.service.job(job_id)
        after = max(after, 0)
        await run.wait_after(after, min(max(wait, 0.0), MAX_WAIT_S), until_done=until_done)
        if not run.done_streaming:  # its client learns it runs: it must outlive main_service
            await self.service.job_driver.records.record_running(run)
        new = run.events_after(after)
        head = stream_wire.StreamHead(
            job_id, run.run_id, run.state.value, after + len(new), run.error
        )
        return stream_wire.encode_stream(head, new)

    @staticmethod
    async def _answer(send: Send, body_coming: Awaitable[bytes]) -> None:
        try:
            status, media, body = await outcome(body_coming, FRAMES)
        except ValidationError as error:  # the job's spec
            message = f"the job's spec is not valid: {error}"
            status, media, body = error_answer(400, "InvalidRequestError", message)
        mark("main_service answers")
        await send_answer(send, status, media, body)


async def outcome(body_coming: Awaitable[bytes], media: str) -> tuple[int, str, bytes]:
    """A plain route's answer: its body, or the BurlaError it raised as JSON, as the
    FastAPI routes answer one (burla.services.errors)."""
    try:
        return 200, media, await body_coming
    except BurlaError as error:
        return error_answer(status_of(error), type(error).__name__, str(error))


def error_answer(status: int, name: str, message: str) -> tuple[int, str, bytes]:
    body = json.dumps({"error": name, "message": message}).encode()
    return status, "application/json", body


async def send_answer(send: Send, status: int, media: str, body: bytes) -> None:
    headers = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequestError("the client went away before its job was read")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass
class JobBody:
    """A job's request as it came."""

    header: dict[str, Any]
    function: bytes
    items: list[tuple[str, bytes]]
    """Its queue items: each input's index, and INLINE and its bytes or IN_BLOB and a key."""
    uploads: list[str]
    """The blobs it refers to."""
    digests: dict[int, bytes]
    """The digests of its big inputs' bytes, as its client worked them out."""


def _job_body(body: bytes) -> JobBody:
    """A job body's header, function, queue items and the blobs it refers to."""
    try:
        frames = wire.decode_all(body)
        header, function = next(frames)
        items: list[tuple[str, bytes]] = []
        uploads: list[str] = []
        digests: dict[int, bytes] = {}
        for item_header, data in frames:
            if "sizes" in item_header:
                items += _run_of_inputs(int(item_header["from"]), item_header["sizes"], data)
                continue
            index, blob = int(item_header["i"]), item_header.get("blob")
            if blob:
                uploads.append(str(blob))
                items.append((str(index), IN_BLOB + str(blob).encode()))
                if "digest" in item_header:
                    digests[index] = bytes.fromhex(str(item_header["digest"]))
            else:
                items.append((str(index), INLINE + data))
    except StopIteration:
        raise InvalidRequestError("a job body starts with the job's frame") from None
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidRequestError(f"the job body is not a job's frames: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("spec"), dict):
        raise InvalidRequestError("a job body starts with the job's frame, which holds its spec")
    numbers = [int(item_id) for item_id, _ in items]
    every = list(range(len(numbers)))
    if numbers != every and sorted(numbers) != every:
        raise InvalidRequestError(
            f"a job's {len(numbers)} inputs are numbered 0 to {len(numbers) - 1}, each once"
        )
    return JobBody(header, function, items, uploads, digests)


def _run_of_inputs(first: int, sizes: Any, data: bytes) -> list[tuple[str, bytes]]:
    """Inputs that follow one another from index `first`, their bytes one after another."""
    if type(sizes) is not list or not all(type(size) is int and size >= 0 for size in sizes):
        raise ValueError("a run of inputs gives each one's size, a whole number")
    if sum(sizes) != len(data):
        raise ValueError(f"a run of inputs says {sum(sizes)} bytes but has {len(data)}")
    ends = list(itertools.accumulate(sizes))
    starts = [0, *ends[:-1]]
    indices = range(first, first + len(sizes))
    return [(str(n), INLINE + data[a:b]) for n, a, b in zip(indices, starts, ends, strict=True)]


def _query(scope: Scope, name: str, kind: type[float] | type[int], default: float) -> Any:
    for key, value in parse_qsl(scope["query_string"].decode("latin-1")):
        if key == name:
            try:
                number = kind(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise InvalidRequestError(f"{name}={value!r} is not a number") from None
            return number
    return default
