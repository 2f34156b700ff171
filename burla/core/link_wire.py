"""Messages between main_service and a node over their connection, defined once.

main_service opens with the cluster's secret (worker_wire.Open, as a node opens a worker)
and sends requests, each with an `id` its answer repeats; the node answers each with a
Reply (NodeHealth for a CheckHealth), sends Reports of what it saw, and a Refusal before
it hangs up on what it cannot read. Each side decodes what it reads here, so a malformed
frame is refused where it enters (InvalidRequestError).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from burla.core import wire
from burla.core.wire import Message, message
from burla.core.worker_wire import Refusal


@message("assign")
@dataclass(frozen=True, slots=True)
class Assign(Message):
    """Run `job` (a JobSpec's JSON) on `workers` of the node's workers. Its pickled
    function starts the payload, or, when `function_key` is set, is that blob. `packages`
    are the blob keys of the packages it needs; `token`, the job's token for its workers;
    `run_length`, how many inputs one of its queue items holds at most
    (services.input_runs). `handed` are inputs handed out to the node with it
    (services.handed_inputs): their bytes end the payload, `handed_sizes` of them.
    `results_every_s`: how often the node writes and reports results at most while it
    still runs inputs of the job (its last go at once)."""

    job: dict[str, Any]
    workers: int
    function_key: str | None
    packages: tuple[str, ...]
    token: str | None
    run_length: int = 1
    handed: tuple[int, ...] = ()
    handed_sizes: tuple[int, ...] = ()
    results_every_s: float = 0.0
    id: int = 0

    def function_of(self, payload: bytes) -> bytes:
        """The pickled function in the payload (empty when it is at `function_key`)."""
        return payload[: len(payload) - sum(self.handed_sizes)]

    def handed_of(self, payload: bytes) -> bytes:
        """The handed-out inputs' bytes in the payload."""
        return payload[len(payload) - sum(self.handed_sizes) :]


@message("standby")
@dataclass(frozen=True, slots=True)
class Standby(Message):
    """The standby definition's container specs (ContainerSpecs' JSON): start what they add."""

    specs: tuple[dict[str, Any], ...]
    id: int = 0


@message("reset")
@dataclass(frozen=True, slots=True)
class Reset(Message):
    """End job `job_id` (None: whichever is assigned) and go back to standby; with
    `cancel`, stop the workers still running its inputs."""

    job_id: str | None
    cancel: bool
    id: int = 0


@message("kill_worker")
@dataclass(frozen=True, slots=True)
class KillWorker(Message):
    """Stop worker `name`, which runs inputs of job `job_id` (main_service gave up on
    them); a fresh one replaces it. A node no longer on that job leaves its workers be."""

    name: str
    job_id: str
    id: int = 0


@message("prune")
@dataclass(frozen=True, slots=True)
class Prune(Message):
    """Keep the node's package cache within `max_bytes` (node_service.package_pruning)."""

    max_bytes: int
    id: int = 0


@message("health")
@dataclass(frozen=True, slots=True)
class CheckHealth(Message):
    """Say how the node is."""

    id: int = 0


@message("reply")
@dataclass(frozen=True, slots=True)
class Reply(Message):
    """Request `id` was carried out, or failed with `error`. `id` is None for a frame
    that was no request."""

    id: int | None
    error: str | None


@message("health_reply")
@dataclass(frozen=True, slots=True)
class NodeHealth(Message):
    """The answer to CheckHealth `id`: the node, its job, how many workers run, and the
    build id of its burla (burla.release)."""

    id: int
    node_id: str
    job_id: str | None
    workers: int
    build: str = ""


@message("report")
@dataclass(frozen=True, slots=True)
class Report(Message):
    """What the node saw, in order: report_wire.NodeReport arrays, each result's bytes in the
    payload (report_wire.read_reports reads them)."""

    node_id: str
    events: list[Any]


Request = Assign | Standby | Reset | KillWorker | Prune | CheckHealth
FromNode = Reply | NodeHealth | Report | Refusal
_REQUESTS = (Assign, Standby, Reset, KillWorker, Prune, CheckHealth)


def read_request(raw: Any) -> Request:
    return cast(Request, wire.decode_message(raw, _REQUESTS))


def read_from_node(raw: Any) -> FromNode:
    return cast(FromNode, wire.decode_message(raw, (Reply, NodeHealth, Report, Refusal)))
