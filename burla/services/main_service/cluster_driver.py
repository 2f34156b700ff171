"""The cluster's side of main_service: carry out what ClusterMachine decides.

ClusterMachine (burla.core.cluster) decides which machines to make, which nodes a job
gets and which go back to standby; this module makes and deletes the machines, keeps a
connection (node_link) to every node that booted, and sends nodes their requests. A
node whose machine failed or was preempted, or whose connection dropped, is lost: the
job it held hears of it through `on_node_lost`, and the loss is kept with its cause
(node_losses), a preempted spot VM apart from a machine that failed.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from burla.core import cluster as c
from burla.core.backoff import Backoff
from burla.core.clock import Clock
from burla.core.cost import NodePrice
from burla.core.errors import BurlaError, ClusterUnavailableError
from burla.core.link_wire import Assign, KillWorker, Prune, Request, Reset, Standby
from burla.core.models import ClusterConfig, JobSpec, NodeState, NodeType
from burla.core.protocols import BootSpec, ComputeProvider, MachineStatus
from burla.core.trace import mark
from burla.release import build_id, build_mismatch
from burla.services.cluster_keys import JobTokens
from burla.services.handed_inputs import handed_payload
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.node_link import Dial, NodeLink, OnReport
from burla.services.main_service.node_losses import LossCause, NodeLoss, NodeLosses

CREATE_FIRST_PAUSE_S = 0.5
CREATE_MAX_PAUSE_S = 60.0
WATCH_EVERY_S = 0.5
ASK_WHY_S = 5.0
"""How long a node lost by its connection waits for its machine to say why."""


@dataclass(frozen=True)
class MachineError:
    at: float
    """When it happened (the cluster's clock, seconds since the epoch)."""
    message: str


OnNodeLost = Callable[[str, str], Awaitable[None]]
"""Called with (job id, node id) when a node that held a job is lost."""


class ClusterDriver:
    def __init__(
        self,
        machine: c.ClusterMachine,
        compute: ComputeProvider,
        clock: Clock,
        *,
        jobs: Mapping[str, JobRun],
        job_tokens: JobTokens,
        node_secret: str,
        boot: Callable[[str, Any], BootSpec],
        dial: Dial,
        on_report: OnReport,
        on_node_lost: OnNodeLost,
        price: Callable[[NodeType], NodePrice],
    ) -> None:
        """`boot(node_id, node_type)` is the boot spec of a new machine; `jobs` are the
        running jobs, whose function and packages go to their nodes, and whose node time
        is counted here at `price` (a node's from the moment it is given the job to the
        moment it is taken back)."""
        self.machine = machine
        self.compute = compute
        self.clock = clock
        self._jobs = jobs
        self._job_tokens = job_tokens
        self._node_secret = node_secret
        self._boot = boot
        self._dial = dial
        self._on_report = on_report
        self._on_node_lost = on_node_lost
        self._price = price
        self.links: dict[str, NodeLink] = {}
        self._creating: set[str] = set()
        self._deleting: set[str] = set()
        self._creations = Backoff(CREATE_FIRST_PAUSE_S, CREATE_MAX_PAUSE_S)
        self.creation_errors: collections.deque[MachineError] = collections.deque(maxlen=20)
        """Why the latest machines could not be made (quota, capacity) or deleted, until
        the cluster is whole again."""
        self.losses = NodeLosses()
        self._tasks: TaskGroup | None = None

    async def start(self, tasks: TaskGroup) -> None:
        """Enter standby, unless nodes are booting already; `tasks` run the driver's work."""
        self._tasks = tasks
        if not self.machine.nodes:
            await self.apply(self.machine.handle(c.RestartCluster()))

    def watch(self) -> None:
        """Watch the machines from now on (see _watch_nodes)."""
        self._spawn(self._watch_nodes)

    async def restart(self, config: ClusterConfig | None) -> None:
        await self.apply(self.machine.handle(c.RestartCluster(config)))

    async def job_started(self, job: JobSpec) -> None:
        """Give the job its nodes (now, or as they come free)."""
        await self.apply(self.machine.handle(c.JobSubmitted(job)))

    async def job_ended(self, job_id: str, *, cancel: bool, reset: anyio.Event) -> None:
        """The job's nodes back to standby; `cancel` stops workers still running it.
        `reset` is set once each of them has answered (or is gone): a node answers once
        the results it finished are durable."""
        answers: list[Callable[[], Awaitable[bool]]] = []
        for command in self.machine.handle(c.JobEnded(job_id)):
            if isinstance(command, c.ResetNode):
                answers += await self._recycle(command.node_id, job_id, cancel)
            else:
                await self.apply([command])
        self._spawn(_all_answered, answers, reset)

    async def prune_packages(self, max_bytes: int) -> dict[str, bool]:
        """Every connected node keeps its package cache within `max_bytes`: node -> done."""
        done: dict[str, bool] = {}

        async def prune(node_id: str) -> None:
            done[node_id] = await self._call_node(node_id, Prune(max_bytes))

        async with anyio.create_task_group() as group:
            for node_id in list(self.links):
                group.start_soon(prune, node_id)
        return done

    def kill_worker(self, node_id: str, worker: str, job_id: str) -> None:
        self._spawn(self._call_node, node_id, KillWorker(worker, job_id))

    async def send_standby(self, specs: list[dict[str, Any]]) -> None:
        """Every connected node starts the containers of this standby definition."""
        async with anyio.create_task_group() as group:
            for node_id in list(self.links):
                group.start_soon(self._call_node, node_id, Standby(tuple(specs)))

    async def node_booted(self, node_id: str, address: str) -> None:
        if await self._connect(node_id, address) is not None:
            await self.apply(self.machine.handle(c.NodeBooted(node_id)))
            mark("main_service has taken the node")

    async def adopt(self, node_id: str, address: str) -> None:
        """Take on a node an earlier main_service started and that still runs: connect,
        check that it runs this burla, and reset it to standby (the jobs it ran go on
        through the Store, on whichever nodes they get now)."""
        link = await self._connect(node_id, address)
        if link is None:
            return
        health = await link.health()
        if health is None:
            await self.node_failed(node_id)
        elif health.build != build_id():
            await self.node_refused(node_id, build_mismatch(health.build))
        else:
            self._spawn_all(await self._recycle(node_id, None, cancel=True))

    async def _connect(self, node_id: str, address: str) -> NodeLink | None:
        """The node's connection, kept as its link; None (and the node lost) if it fails."""
        assert self._tasks is not None
        try:
            link = await NodeLink.connect(
                node_id,
                address,
                self._node_secret,
                on_report=self._on_report,
                on_lost=self._unreachable,
                tasks=self._tasks,
                dial=self._dial,
            )
        except ClusterUnavailableError:
            await self.node_failed(node_id)
            return None
        self._close_link(node_id)
        self.links[node_id] = link
        return link

    async def node_refused(self, node_id: str, reason: str) -> None:
        self._machine_error(f"{node_id}: {reason}")
        await self.node_failed(node_id, None)

    async def _unreachable(self, node_id: str) -> None:
        """The node's connection dropped. Its machine is asked why first (for a moment):
        a spot VM that is being preempted is shut down, and its connection drops before
        the next look at the machines."""
        cause = LossCause.UNREACHABLE
        with anyio.move_on_after(ASK_WHY_S):
            try:
                machine = await self.compute.get(node_id)
            except BurlaError:
                machine = None
            if machine is not None and machine.preempted:
                cause = LossCause.PREEMPTED
        await self.node_failed(node_id, cause)

    async def node_failed(
        self, node_id: str, cause: LossCause | None = LossCause.UNREACHABLE
    ) -> None:
        """The node is lost for `cause` (None: it never was a working node, and the reason
        is among the creation errors already)."""
        if node_id not in self.machine.nodes:
            return
        node = self.machine.nodes[node_id]
        job_id = node.job_id
        if cause is not None:
            self.losses.lost(
                NodeLoss(self.clock.now(), node_id, node.node_type.name, job_id, cause)
            )
        self._close_link(node_id)
        self._left(job_id, node_id)
        await self.apply(self.machine.handle(c.NodeFailed(node_id)))
        if job_id is not None:
            await self._on_node_lost(job_id, node_id)

    async def apply(self, commands: list[c.ClusterCommand]) -> None:
        for command in commands:
            match command:
                case c.StartNode(node_id, node_type):
                    # A cloud VM takes seconds just to be created: many start side by side.
                    self._creating.add(node_id)
                    self._spawn(self._create, self._boot(node_id, node_type))
                case c.AssignNodes(job, node_ids, workers):
                    run = self._jobs.get(job.job_id)
                    for node_id, share in zip(node_ids, workers, strict=True):
                        self._joined(job.job_id, node_id)
                        handed = run.hand_out(node_id, share) if run is not None else []
                        self._spawn(self._assign, job, node_id, share, handed)
                case c.DeleteNode(node_id):
                    self._close_link(node_id)
                    self._begin_delete(node_id)
                case c.ResetNode(node_id):
                    self._spawn_all(await self._recycle(node_id, None, False))
                case c.ReleaseNode(node_id, job_id, keep):
                    self._left(job_id, node_id)
                    self._spawn(self._release, node_id, job_id, keep)

    def _joined(self, job_id: str, node_id: str) -> None:
        """The node's time counts for the job from now, at its type's price."""
        run = self._jobs.get(job_id)
        if run is not None:
            node_type = self.machine.nodes[node_id].node_type
            run.node_time.join(node_id, self.clock.now(), self._price(node_type))

    def _left(self, job_id: str | None, node_id: str) -> None:
        """The node's time no longer counts for the job (the job's end closes the rest)."""
        run = self._jobs.get(job_id) if job_id is not None else None
        if run is not None:
            run.node_time.leave(node_id, self.clock.now())

    def status(self) -> dict[str, Any]:
        nodes = [
            {
                "node_id": n.node_id,
                "type": n.node_type.name,
                "cpus": n.node_type.cpus,
                "spot": n.node_type.spot,
                "state": n.state.value,
                "job_id": n.job_id,
            }
            for n in sorted(self.machine.nodes.values(), key=lambda n: n.node_id)
        ]
        ready = sum(1 for n in self.machine.nodes.values() if n.state is NodeState.READY)
        return {
            "nodes": nodes,
            "ready": ready,
            "standby": self.machine.config.standby.model_dump(mode="json"),
            "creation_errors": [
                {"at": error.at, "message": error.message} for error in self.creation_errors
            ],
            "node_losses": self.losses.as_json(),
        }

    async def _create(self, boot: BootSpec) -> None:
        try:
            await self.compute.create(boot)
            self._creations.reset()
        except BurlaError as error:
            # Quota or capacity: the replacement would fail the same way at once, so each
            # failure in a row waits longer before it counts.
            self._machine_error(f"{boot.node_id}: {error}")
            await anyio.sleep(self._creations.pause())
            self._creating.discard(boot.node_id)
            await self.node_failed(boot.node_id, None)
        finally:
            self._creating.discard(boot.node_id)
        if boot.node_id not in self.machine.nodes:  # given up while it was being made
            self._begin_delete(boot.node_id)

    def _begin_delete(self, node_id: str) -> None:
        """Delete a machine, unless that is under way; one the provider will not delete
        yet (still starting, say) stays, and the next look at the machines tries again."""
        if node_id not in self._deleting:
            self._deleting.add(node_id)  # now: it counts as a machine left at once
            self._spawn(self._delete, node_id)

    async def _delete(self, node_id: str) -> None:
        try:
            await self.compute.delete(node_id)
        except BurlaError as error:
            self._machine_error(f"{node_id}: not deleted yet: {error}")
        finally:
            self._deleting.discard(node_id)

    async def _assign(
        self, job: JobSpec, node_id: str, workers: int, handed: list[tuple[str, bytes]]
    ) -> None:
        """Tell the node to run the job, with the inputs `handed` to it (services.
        handed_inputs); a node that cannot be told is lost, and they go back."""
        run = self._jobs.get(job.job_id)
        if run is None or run.state.finished:
            return
        indices, sizes, inputs = handed_payload(handed)
        request = Assign(
            job=job.model_dump(mode="json"),
            workers=workers,
            function_key=run.function_key if run.function is None else None,
            packages=tuple(run.package_keys),
            token=self._job_tokens.make(job.job_id, run.owner),
            run_length=run.run_length,
            handed=indices,
            handed_sizes=sizes,
            results_every_s=run.results_every_s,
        )
        payload = run.function or b""
        if inputs:
            payload += inputs
        mark("main_service assigns a node")
        if not await self._call_node(node_id, request, payload):
            await self.node_failed(node_id)

    def backlog(self, job_id: str, queued: int) -> None:
        """How many of the job's inputs wait in its queue: a node that boots for it joins
        only if they are enough to keep it busy. Told only when it changed: most reports
        (results) leave it as it was."""
        job = self.machine.jobs.get(job_id)
        if job is not None and job.queued != queued:
            self.machine.handle(c.JobBacklog(job_id, queued))

    async def node_drained(self, node_id: str, job_id: str) -> None:
        await self.apply(self.machine.handle(c.NodeDrained(node_id, job_id)))

    async def _release(self, node_id: str, job_id: str, keep: bool) -> None:
        """Take a node off a job: once it has handed back what it may have claimed since
        it said it had nothing to do, it is standby again (`keep`) or deleted."""
        if keep:
            self._spawn_all(await self._recycle(node_id, job_id, cancel=True))
            return
        await self._call_node(node_id, Reset(job_id, True))
        self._close_link(node_id)
        self._begin_delete(node_id)

    async def _recycle(
        self, node_id: str, job_id: str | None, cancel: bool
    ) -> list[Callable[[], Awaitable[bool]]]:
        """Back to standby after job `job_id`; `cancel` stops workers still running it.
        The node is ready for the next job at once: it carries out its connection's
        requests in order, and the reset is sent before the node can be given another
        job (the same one again, too: a reset sent after it would end it), so it lands
        first (a node that is gone is reported lost by its connection)."""
        link = self.links.get(node_id)
        answered = [] if link is None else [await link.send(Reset(job_id, cancel))]
        await self.apply(self.machine.handle(c.NodeBooted(node_id)))
        return answered

    def _spawn_all(self, answers: list[Callable[[], Awaitable[bool]]]) -> None:
        """Wait for these answers in the background."""
        for answer in answers:
            self._spawn(answer)

    async def _call_node(self, node_id: str, request: Request, payload: bytes = b"") -> bool:
        link = self.links.get(node_id)
        return link is not None and await link.request(request, payload)

    def _close_link(self, node_id: str) -> None:
        link = self.links.pop(node_id, None)
        if link is not None:
            self._spawn(link.aclose)

    async def _watch_nodes(self) -> None:
        """Nodes whose machine failed or vanished are lost; boots that hang are given up;
        machines of no node (left by a crash, or made after they were given up) go. The
        provider failing for longer than its retries last skips a look, not the cluster."""
        while True:
            await anyio.sleep(WATCH_EVERY_S)
            try:
                await self._look_at_machines()
            except BurlaError as error:
                self._machine_error(f"could not look at the machines: {error}")
            await self.apply(self.machine.handle(c.Tick()))
            if self.machine.whole():
                self.creation_errors.clear()  # what went wrong was made up for

    async def _look_at_machines(self) -> None:
        listed = await self.compute.list()
        machines = {m.node_id: m for m in listed}
        failed = {m.node_id for m in listed if m.status is MachineStatus.FAILED or m.preempted}
        nodes = self.machine.nodes
        # Only nodes whose machine is missing, failed or preempted have anything to do
        # below; found with set operations, as a cluster of 10,000 nodes is looked at twice
        # a second. A preempted machine's node is lost at once, while the machine stops.
        suspects = ((nodes.keys() - machines.keys()) | (nodes.keys() & failed)) - self._creating
        in_order = [n for n in nodes if n in suspects] if suspects else []
        for node_id in in_order:
            if node_id in self._creating:
                continue  # its machine is being made; not listed yet
            machine = machines.get(node_id)
            if machine is None:  # a list can miss one; ask for it before calling it lost
                machine = await self.compute.get(node_id)
            if machine is None:
                await self.node_failed(node_id, LossCause.MACHINE_GONE)
            elif machine.preempted:
                await self.node_failed(node_id, LossCause.PREEMPTED)
            elif machine.status is MachineStatus.FAILED:
                await self.node_failed(node_id, LossCause.MACHINE_FAILED)
        for node_id in machines.keys() - self.machine.nodes.keys() - self._creating:
            if machines[node_id].preempted:  # lost by its connection before this was seen
                self.losses.preempted(node_id)
            if machines[node_id].status is not MachineStatus.STOPPING:
                self._begin_delete(node_id)
        # Taken now, not when the list was asked for: a delete or a create that began
        # since is in _deleting or _creating, and one that ended was in the list.
        left = (machines.keys() | self._deleting | self._creating) - self.machine.nodes.keys()
        await self.apply(self.machine.handle(c.MachinesLeft(frozenset(left))))

    def _machine_error(self, message: str) -> None:
        self.creation_errors.append(MachineError(self.clock.now(), message))

    def _spawn(self, function: Callable[..., Any], *args: Any) -> None:
        assert self._tasks is not None
        self._tasks.start_soon(function, *args)


async def _all_answered(answers: list[Callable[[], Awaitable[bool]]], done: anyio.Event) -> None:
    for answer in answers:
        await answer()
    done.set()
