"""The node's end of a worker connection: burla.core.worker_wire's messages over loopback
TCP, each decoded where it enters."""

from __future__ import annotations

import anyio

from burla.core.errors import BackendError, InvalidRequestError
from burla.core.protocols import Frames
from burla.core.worker_wire import FromWorker, Hello, Open, ToWorker, read_from_worker
from burla.services.framing import message_frame, open_frames

Sent = tuple[ToWorker, bytes]
Heard = tuple[FromWorker, bytes]


class WorkerChannel:
    def __init__(self, frames: Frames) -> None:
        self._frames = frames
        self.pid = 0
        self.refusal: str | None = None
        """Why receive gave up on the worker, if it sent what is no message."""

    @classmethod
    async def connect(cls, port: int, secret: str, *, timeout_s: float = 30.0) -> WorkerChannel:
        """Connect once the worker listens, open with its secret, and wait for its hello."""
        with anyio.move_on_after(timeout_s):
            while True:
                try:
                    frames = await open_frames("127.0.0.1", port)
                    break
                except OSError:
                    await anyio.sleep(0.01)
            channel = cls(frames)
            await channel._frames.send([message_frame(Open(secret))])
            hello = await channel.receive()
            if hello is None or type(hello[0]) is not Hello:
                await channel.aclose()
                raise BackendError(f"the worker on port {port} did not say hello; see its log")
            channel.pid = hello[0].pid
            return channel
        raise BackendError(
            f"no worker answered on 127.0.0.1:{port} within {timeout_s:g} s; see its log"
        )

    async def send(self, messages: list[Sent]) -> None:
        await self._frames.send([message_frame(message, payload) for message, payload in messages])

    async def receive(self) -> Heard | None:
        """The worker's next message, or None once it hung up or sent what is no message
        (then `refusal` says what)."""
        frame = await self._frames.receive()
        if frame is None:
            self.refusal = self._frames.refusal
            return None
        header, payload = frame
        try:
            return read_from_worker(header, payload), payload
        except InvalidRequestError as error:
            self.refusal = str(error)
            return None

    async def aclose(self) -> None:
        await self._frames.aclose()
