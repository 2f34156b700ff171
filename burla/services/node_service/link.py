"""The node's end of main_service's connection: requests in, replies and reports out.

main_service keeps one framed connection to every node it uses (see services.framing). Its
first frame must carry the cluster's secret. Requests are carried out one at a time, in the
order they came, so that a reset sent after a job always lands after that job's assignment;
stopping a worker runs alongside, since it waits for a process to go. The node's reports go
back over the newest connection; a report that cannot be sent waits for the next one.
"""

from __future__ import annotations

import contextlib
import hmac

import anyio
import anyio.abc
from pydantic import ValidationError

from burla.core.errors import BurlaError, InvalidRequestError
from burla.core.link_wire import (
    Assign,
    CheckHealth,
    KillWorker,
    NodeHealth,
    Prune,
    Reply,
    Report,
    Request,
    Reset,
    Standby,
    read_request,
)
from burla.core.models import ContainerSpec, JobSpec
from burla.core.protocols import Frames
from burla.core.wire import Message
from burla.core.worker_wire import Refusal, read_open
from burla.services.framing import message_frame
from burla.services.handed_inputs import handed_claims
from burla.services.node_service.node import NodeService

_REFUSED = "wrong or missing cluster secret: only this cluster's main_service may use a node"
_GONE = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


class MainLink:
    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._current: Frames | None = None
        self._connected = anyio.Event()

    async def report(self, report: Report, payload: bytes) -> None:
        """Send one report to main_service, waiting for a connection if there is none."""
        while True:
            link = self._current
            if link is None:
                await self._connected.wait()
                continue
            try:
                await link.send([message_frame(report, payload)])
                return
            except _GONE:
                self._drop(link)

    async def serve(self, node: NodeService, link: Frames) -> None:
        """Serve one connection from main_service for `node` until it closes."""
        try:
            if not self._opens(await link.receive()):
                with contextlib.suppress(*_GONE):
                    await link.send([message_frame(Refusal(_REFUSED))])
                return
            self._current = link
            self._connected.set()
            async with anyio.create_task_group() as tasks:
                while (frame := await link.receive()) is not None:
                    if _is_kill(frame[0]):  # it waits for a process to go: alongside
                        tasks.start_soon(self._answer, node, link, *frame)
                    else:
                        await self._answer(node, link, *frame)
                if link.refusal is not None:
                    with contextlib.suppress(*_GONE):
                        refusal = Refusal(f"{link.refusal}; hanging up")
                        await link.send([message_frame(refusal)])
        finally:
            self._drop(link)
            await link.aclose()

    def _opens(self, hello: tuple[object, bytes] | None) -> bool:
        """Whether the first frame opens with the cluster's secret."""
        try:
            opened = read_open(hello[0]) if hello is not None else None
        except InvalidRequestError:
            return False
        return opened is not None and hmac.compare_digest(
            opened.secret.encode(), self._secret.encode()
        )

    def _drop(self, link: Frames) -> None:
        if self._current is link:
            self._current = None
            self._connected = anyio.Event()

    async def _answer(self, node: NodeService, link: Frames, raw: object, payload: bytes) -> None:
        reply: Message
        request_id: int | None = None
        try:
            request = read_request(raw)
            request_id = request.id
            reply = await _carry_out(node, request, payload)
        except (BurlaError, ValidationError, TypeError, ValueError) as error:
            reply = Reply(request_id, f"{type(error).__name__}: {error}")
        with contextlib.suppress(*_GONE):
            await link.send([message_frame(reply)])


def _is_kill(raw: object) -> bool:
    return isinstance(raw, list) and bool(raw) and raw[0] == KillWorker.tag


async def _carry_out(node: NodeService, request: Request, payload: bytes) -> Reply | NodeHealth:
    match request:
        case Assign(job, workers, function_key, packages, token, run_length, handed, sizes):
            function = request.function_of(payload) if function_key is None else function_key
            spec = JobSpec.model_validate(job)
            inputs = handed_claims(node.node_id, handed, sizes, request.handed_of(payload))
            await node.assign(
                spec,
                function,
                workers,
                packages,
                token,
                run_length,
                inputs,
                results_every_s=request.results_every_s,
            )
        case Standby(specs):
            await node.set_containers(tuple(ContainerSpec.model_validate(s) for s in specs))
        case Reset(job_id, cancel):
            await node.reset(job_id, cancel=cancel)
        case KillWorker(name, job_id):
            await node.kill_worker(name, job_id)
        case Prune(max_bytes):
            await node.prune_packages(max_bytes)
        case CheckHealth():
            return NodeHealth(request.id, **node.health())
    return Reply(request.id, None)
