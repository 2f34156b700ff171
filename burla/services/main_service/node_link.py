"""main_service's end of its connection to one node (see node_service.link).

Requests go out in order and are answered in order; the node's reports come back over the
same connection and are handed to `on_report` one at a time, in the order they were sent.
`on_report` must never wait for a request's answer: the answer comes over this connection.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
from anyio.abc import TaskGroup

from burla.core.errors import ClusterUnavailableError, InvalidRequestError
from burla.core.link_wire import (
    CheckHealth,
    NodeHealth,
    Reply,
    Report,
    Request,
    read_from_node,
)
from burla.core.protocols import Frames
from burla.core.worker_wire import Open, Refusal
from burla.services.framing import message_frame, open_frames

OnReport = Callable[[str, list[list[Any]], bytes], Awaitable[None]]
OnLost = Callable[[str], Awaitable[None]]
Dial = Callable[[str], Awaitable[Frames]]
"""Opens a connection to a node's address: TCP, or the simulator's in-memory frames."""


async def dial_tcp(address: str) -> Frames:
    """A framed TCP connection to `host:port`, small frames sent at once."""
    host, port = address.rsplit(":", 1)
    return await open_frames(host, int(port))


REQUEST_TIMEOUT_S = 120.0


class NodeLink:
    def __init__(self, node_id: str, frames: Frames, on_report: OnReport) -> None:
        self.node_id = node_id
        self._frames = frames
        self._on_report = on_report
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[anyio.Event, list[Reply | NodeHealth | None]]] = {}
        self.closed = False

    @classmethod
    async def connect(
        cls,
        node_id: str,
        address: str,
        secret: str,
        *,
        on_report: OnReport,
        on_lost: OnLost,
        tasks: TaskGroup,
        dial: Dial = dial_tcp,
    ) -> NodeLink:
        """Connect to the node at `address` and start reading its reports; `on_lost` is
        called if the connection drops before `aclose`."""
        try:
            frames = await dial(address)
        except OSError as error:
            raise ClusterUnavailableError(
                f"node {node_id} at {address} refused main_service's connection: {error}"
            ) from error
        await frames.send([message_frame(Open(secret))])
        link = cls(node_id, frames, on_report)
        tasks.start_soon(link._read, on_lost)
        return link

    async def request(self, request: Request, payload: bytes = b"") -> bool:
        """Ask the node to do something; True once it did, False if it failed or is gone.
        The request goes with an id of this connection's, which its answer repeats."""
        return _carried_out(await self._ask(request, payload))

    async def health(self) -> NodeHealth | None:
        """How the node is; None if it did not say."""
        reply = await self._ask(CheckHealth())
        return reply if type(reply) is NodeHealth else None

    async def send(self, request: Request, payload: bytes = b"") -> Callable[[], Awaitable[bool]]:
        """Send a request now, before any sent after this returns; what it returns waits
        for the answer (True once the node did it), for a caller that must not wait here."""
        answer = await self._sent(request, payload)

        async def answered() -> bool:
            return _carried_out(await answer())

        return answered

    async def _ask(self, request: Request, payload: bytes = b"") -> Reply | NodeHealth | None:
        return await (await self._sent(request, payload))()

    async def _sent(
        self, request: Request, payload: bytes
    ) -> Callable[[], Awaitable[Reply | NodeHealth | None]]:
        async def nothing() -> None:
            return None

        if self.closed:
            return nothing
        request_id = next(self._ids)
        done = anyio.Event()
        answer: list[Reply | NodeHealth | None] = [None]
        self._waiting[request_id] = (done, answer)
        try:
            numbered = dataclasses.replace(request, id=request_id)
            await self._frames.send([message_frame(numbered, payload)])
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._waiting.pop(request_id, None)
            return nothing

        async def reply() -> Reply | NodeHealth | None:
            try:
                with anyio.move_on_after(REQUEST_TIMEOUT_S):
                    await done.wait()
            finally:
                self._waiting.pop(request_id, None)
            return answer[0]

        return reply

    async def _take(self, header: Any, payload: bytes) -> bool:
        """Carry out one frame from the node; False once the node refused this connection."""
        message = read_from_node(header)
        match message:
            case Report():
                await self._on_report(self.node_id, message.events, payload)
            case Reply() | NodeHealth():
                waiting = self._waiting.get(message.id or 0)
                if waiting is not None:
                    waiting[1][0] = message
                    waiting[0].set()
        return type(message) is not Refusal

    async def aclose(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError, anyio.BrokenResourceError):
            await self._frames.aclose()

    async def _read(self, on_lost: OnLost) -> None:
        while (frame := await self._frames.receive()) is not None:
            try:
                if not await self._take(*frame):
                    break
            except (
                InvalidRequestError,
                LookupError,
                TypeError,
                ValueError,
                AttributeError,
            ) as error:
                self._frames.refusal = f"{type(error).__name__}: {error}"
                break
        if self._frames.refusal is not None:
            print(
                f"main_service: node {self.node_id} sent what main_service cannot read "
                f"({self._frames.refusal}); its connection is dropped and the node counted lost",
                file=sys.stderr,
            )
        for done, _ in self._waiting.values():
            done.set()  # no answer will come: the requests failed
        if self.closed:
            return
        await self.aclose()
        await on_lost(self.node_id)


def _carried_out(reply: Reply | NodeHealth | None) -> bool:
    """Whether a node's answer says it did what it was asked."""
    return type(reply) is NodeHealth or (type(reply) is Reply and reply.error is None)
