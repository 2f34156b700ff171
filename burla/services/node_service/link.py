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
from typing import Any

import anyio
import anyio.abc
from pydantic import ValidationError

from burla.core.errors import BurlaError
from burla.core.models import ContainerSpec, JobSpec
from burla.core.protocols import Frames
from burla.services.framing import framed
from burla.services.node_service.node import NodeService

_REFUSED = "wrong or missing cluster secret: only this cluster's main_service may use a node"


class MainLink:
    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._current: Frames | None = None
        self._connected = anyio.Event()

    async def report(self, header: dict[str, Any], payload: bytes) -> None:
        """Send one report to main_service, waiting for a connection if there is none."""
        while True:
            link = self._current
            if link is None:
                await self._connected.wait()
                continue
            try:
                await link.send([({"op": "report", **header}, payload)])
                return
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._drop(link)

    async def serve(self, node: NodeService, stream: anyio.abc.ByteStream | Frames) -> None:
        """Serve one connection from main_service for `node` until it closes."""
        link = framed(stream)
        try:
            hello = await link.receive()
            secret = _object(hello[0]).get("secret") if hello else None
            if not isinstance(secret, str) or not hmac.compare_digest(
                secret.encode(), self._secret.encode()
            ):
                with contextlib.suppress(
                    OSError, anyio.BrokenResourceError, anyio.ClosedResourceError
                ):
                    await link.send([({"op": "refused", "message": _REFUSED}, b"")])
                return
            self._current = link
            self._connected.set()
            async with anyio.create_task_group() as tasks:
                while (frame := await link.receive()) is not None:
                    header, payload = _object(frame[0]), frame[1]
                    if header.get("op") == "kill_worker":
                        tasks.start_soon(self._answer, node, link, header, payload)
                    else:
                        await self._answer(node, link, header, payload)
                if link.refusal is not None:
                    with contextlib.suppress(
                        OSError, anyio.BrokenResourceError, anyio.ClosedResourceError
                    ):
                        message = f"{link.refusal}; hanging up"
                        await link.send([({"op": "refused", "message": message}, b"")])
        finally:
            self._drop(link)
            await link.aclose()

    def _drop(self, link: Frames) -> None:
        if self._current is link:
            self._current = None
            self._connected = anyio.Event()

    async def _answer(
        self, node: NodeService, link: Frames, header: dict[str, Any], payload: bytes
    ) -> None:
        reply: dict[str, Any] = {"op": "reply", "id": header.get("id"), "error": None}
        try:
            reply.update(await _carry_out(node, header, payload))
        except (BurlaError, ValidationError, KeyError, TypeError, ValueError) as error:
            reply["error"] = f"{type(error).__name__}: {error}"
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await link.send([(reply, b"")])


def _object(header: Any) -> dict[str, Any]:
    """A frame's header as a request: a JSON array is none (its op is missing)."""
    return header if isinstance(header, dict) else {}


async def _carry_out(node: NodeService, header: dict[str, Any], payload: bytes) -> dict[str, Any]:
    match header.get("op"):
        case "assign":
            job = JobSpec.model_validate(header["job"])
            function_key = header.get("function_key")
            workers = int(header["workers"])
            function = payload if function_key is None else function_key
            token = header.get("token")
            packages = header.get("packages") or ()
            await node.assign(job, function, workers, packages, str(token) if token else None)
        case "standby":
            specs = tuple(ContainerSpec.model_validate(spec) for spec in header["specs"])
            await node.set_containers(specs)
        case "reset":
            await node.reset(header.get("job_id"), cancel=bool(header.get("cancel")))
        case "kill_worker":
            await node.kill_worker(str(header["name"]))
        case "health":
            return node.health()
        case other:
            raise ValueError(f"unknown request {other!r}")
    return {}
