"""main_service's end of its connection to one node (see node_service.link).

Requests go out in order and are answered in order; the node's reports come back over the
same connection and are handed to `on_report` one at a time, in the order they were sent.
`on_report` must never wait for a request's answer: the answer comes over this connection.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
from anyio.abc import TaskGroup

from burla.core.errors import ClusterUnavailableError, InvalidRequestError
from burla.core.protocols import Frames
from burla.services.framing import framed, no_delay

OnReport = Callable[[str, list[list[Any]], bytes], Awaitable[None]]
OnLost = Callable[[str], Awaitable[None]]
Dial = Callable[[str], Awaitable[anyio.abc.ByteStream | Frames]]
"""Opens a connection to a node's address: TCP, or the simulator's in-memory frames."""


async def dial_tcp(address: str) -> anyio.abc.ByteStream:
    """A TCP connection to `host:port`, small frames sent at once."""
    host, port = address.rsplit(":", 1)
    stream = await anyio.connect_tcp(host, int(port))
    no_delay(stream)
    return stream


REQUEST_TIMEOUT_S = 120.0


class NodeLink:
    def __init__(self, node_id: str, frames: Frames, on_report: OnReport) -> None:
        self.node_id = node_id
        self._frames = frames
        self._on_report = on_report
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[anyio.Event, list[dict[str, Any] | None]]] = {}
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
            stream = await dial(address)
        except OSError as error:
            raise ClusterUnavailableError(
                f"node {node_id} at {address} refused main_service's connection: {error}"
            ) from error
        frames = framed(stream)
        await frames.send([({"op": "hello", "secret": secret}, b"")])
        link = cls(node_id, frames, on_report)
        tasks.start_soon(link._read, on_lost)
        return link

    async def request(self, header: dict[str, Any], payload: bytes = b"") -> bool:
        """Ask the node to do something; True once it did, False if it failed or is gone."""
        if self.closed:
            return False
        request_id = next(self._ids)
        done = anyio.Event()
        answer: list[dict[str, Any] | None] = [None]
        self._waiting[request_id] = (done, answer)
        try:
            await self._frames.send([({**header, "id": request_id}, payload)])
            with anyio.move_on_after(REQUEST_TIMEOUT_S):
                await done.wait()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        finally:
            self._waiting.pop(request_id, None)
        reply = answer[0]
        return reply is not None and reply.get("error") is None

    async def _take(self, header: Any, payload: bytes) -> bool:
        """Carry out one frame from the node; False once the node refused this connection."""
        op = header.get("op")
        if op == "report":
            await self._on_report(self.node_id, header["events"], payload)
        elif op == "reply":
            waiting = self._waiting.get(header.get("id", 0))
            if waiting is not None:
                waiting[1][0] = header
                waiting[0].set()
        return bool(op != "refused")

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
