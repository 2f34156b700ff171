"""main_service's logic: the cluster and its jobs, each carried out by its own part.

Two state machines from burla.core do the deciding: ClusterMachine (nodes, standby,
which nodes a job gets) and one InputMachine per job (tries, returns, cancel). A job's
path through main_service reads in order:

- submission: the job checked, named, and given its image and packages;
- job_driver: its inputs queued, then its nodes' reports fed to its InputMachine until
  it ends;
- cluster_driver: its nodes assigned when it starts, back to standby when it ends;
- standby: images jobs bring, added to the standby definition;
- takeover: jobs an earlier main_service left running, at start.

MainService wires them together and is what the HTTP routes, the process entry and the
simulator use. It never unpickles user bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from anyio.abc import TaskGroup

from burla.core import cluster as c
from burla.core.clock import Clock
from burla.core.cost import ListPrice, NodePrice, price_of, this_machine
from burla.core.models import ClusterConfig, Node, NodeState, NodeType
from burla.core.protocols import (
    BlobStore,
    BootSpec,
    ComputeProvider,
    ImageMaker,
    Machine,
    MachineStatus,
    Store,
)
from burla.services.cluster_keys import JobTokens, node_secret
from burla.services.main_service.cluster_driver import ClusterDriver
from burla.services.main_service.job_driver import JobDriver
from burla.services.main_service.jobs import JobRun
from burla.services.main_service.keep import DEFAULT_KEEP, Keep
from burla.services.main_service.node_link import Dial, dial_tcp
from burla.services.main_service.packages import PackageBuilder
from burla.services.main_service.standby import Standby
from burla.services.main_service.submission import JOB_ID, Submissions
from burla.services.main_service.takeover import take_over_jobs
from burla.services.main_service.users import retire_jobs

_ADOPTED = (MachineStatus.BOOTING, MachineStatus.RUNNING)
"""Machines found at start that become nodes; the others (failing, stopping) are deleted."""


class MainService:
    def __init__(
        self,
        *,
        config: ClusterConfig,
        store: Store,
        blobs: BlobStore,
        compute: ComputeProvider,
        clock: Clock,
        main_url: str,
        boot_env: dict[str, str],
        token: str,
        machines: Sequence[Machine] = (),
        validate: bool = False,
        dial: Dial = dial_tcp,
        images: ImageMaker | None = None,
        keep: Keep = DEFAULT_KEEP,
        list_price: ListPrice = this_machine,
    ) -> None:
        """`machines` are this cluster's, found as main_service starts (left by one that
        stopped, or the local cluster's first, already booting): the booting ones and the
        running ones (which `run()` connects to and resets) become its nodes; without any,
        `run()` starts the standby set. With `images`, a job may name an image not in the
        standby definition, or bring a Dockerfile: it is added to the definition and
        started on every node. What it keeps of finished work (results, images added for
        jobs, package archives) stays within `keep`. A node type without a price_per_hour
        of its own costs its `list_price` (none by default: this machine's cluster)."""
        self.cluster, self._running = _cluster_of(config, clock, machines, validate)
        self._list_price = list_price
        self._prices: dict[NodeType, NodePrice] = {}
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self.validate = validate
        self.node_secret = node_secret(token)
        """What nodes know main_service by (they are booted with it in BURLA_SECRET)."""
        self.job_tokens = JobTokens(token)
        self.packages = PackageBuilder(
            store,
            blobs,
            clock,
            limit_bytes=keep.package_bytes,
            in_use=self._packages_in_use,
        )
        jobs: dict[str, JobRun] = {}
        self.nodes = ClusterDriver(
            self.cluster,
            compute,
            clock,
            jobs=jobs,
            job_tokens=self.job_tokens,
            node_secret=self.node_secret,
            boot=lambda node_id, node_type: BootSpec(node_id, node_type, main_url, boot_env),
            dial=dial,
            on_report=self.report,
            on_node_lost=self._node_lost,
            price=self.price,
        )
        self.job_driver = JobDriver(
            store,
            blobs,
            clock,
            self.nodes,
            self.job_tokens,
            jobs=jobs,
            spawn=self._spawn,
            results_limit_bytes=keep.results_bytes,
        )
        self.standby = Standby(
            store,
            self.cluster,
            self.nodes,
            images,
            images_kept=keep.images,
            running_images=self.job_driver.running_images,
        )
        self.submissions = Submissions(
            store,
            clock,
            self.standby,
            self.packages,
            self.job_driver,
            validate=validate,
            price=self.price,
        )
        self.submit = self.submissions.submit
        self._tasks: TaskGroup | None = None

    @property
    def jobs(self) -> dict[str, JobRun]:
        """Running jobs, and finished ones until their client has had time to read them."""
        return self.job_driver.jobs

    @property
    def last_activity(self) -> float:
        return self.job_driver.last_activity

    def idle_for(self, seconds: float) -> bool:
        """Whether no job runs and none ran in the last `seconds`. The jobs (finished ones
        too, by the thousand) are looked at last: a busy cluster answers at the first
        test."""
        if self.clock.now() - self.last_activity < seconds:
            return False
        return all(run.state.finished for run in self.jobs.values())

    async def run(self, tasks: TaskGroup) -> None:
        """Enter standby by the stored definition (this one, if none is), take over the
        jobs an earlier main_service left running, and watch the nodes."""
        self._tasks = tasks
        await self.standby.load()
        await self.nodes.start(tasks)
        await take_over_jobs(
            self.store, self.clock, self.job_driver, self.standby, validate=self.validate
        )
        # After the jobs: an adopted node is ready at once, and one no job waits for yet
        # would be an idle node beyond standby, which goes.
        for node_id, address in self._running:
            self._spawn(self.nodes.adopt, node_id, address)
        self.nodes.watch()
        self._spawn(self.job_driver.keep_logs_stored)
        self._spawn(self.job_driver.keep_memory)
        self._spawn(self.job_driver.budgets.keep)

    async def restart(self, config: ClusterConfig | None = None) -> None:
        if config is not None:
            await self.standby.save(config)
        await self.nodes.restart(config)

    async def node_refused(self, node_id: str, reason: str) -> None:
        """A node that may not join (it runs other burla code): it is failed and deleted,
        and the reason shows among the cluster's machine errors."""
        await self.nodes.node_refused(node_id, reason)

    async def node_booted(self, node_id: str, address: str) -> None:
        await self.nodes.node_booted(node_id, address)

    async def report(self, node_id: str, events: Any, payload: bytes) -> None:
        await self.job_driver.report(node_id, events, payload)

    async def _node_lost(self, job_id: str, node_id: str) -> None:
        await self.job_driver.node_lost(job_id, node_id)

    async def cancel(self, job_id: str, *, failed: bool = False) -> None:
        """Cancel a job (`failed`: its caller stopped at an input's error, so it failed);
        one not seen yet (its submission still on the way) is canceled when it arrives."""
        if not await self.job_driver.cancel(job_id, failed=failed) and JOB_ID.fullmatch(job_id):
            self.job_driver.canceled_early.append(job_id)

    def price(self, node_type: NodeType) -> NodePrice:
        """What one node of the type costs per hour (see burla.core.cost.price_of)."""
        price = self._prices.get(node_type)
        if price is None:
            price = self._prices[node_type] = price_of(node_type, self._list_price)
        return price

    def job(self, job_id: str) -> JobRun:
        return self.job_driver.job(job_id)

    def job_of_token(self, token: str) -> JobRun | None:
        return self.job_driver.job_of_token(token)

    async def retire_owner(self, user: str) -> int:
        """Hand a removed user's jobs to a name no user can have (users.retire_jobs)."""
        return await retire_jobs(self.store, user, self.jobs.values(), self.job_driver.records.save)

    def cluster_status(self) -> dict[str, Any]:
        jobs = {job_id: run.state.value for job_id, run in self.jobs.items()}
        return {**self.nodes.status(), "jobs": jobs}

    def _spawn(self, function: Callable[..., Any], *args: Any) -> None:
        assert self._tasks is not None
        self._tasks.start_soon(function, *args)

    def _packages_in_use(self) -> set[str]:
        return {key for run in self.job_driver.running() for key in run.package_keys}


def _cluster_of(
    config: ClusterConfig, clock: Clock, machines: Sequence[Machine], validate: bool
) -> tuple[c.ClusterMachine, list[tuple[str, str]]]:
    """The cluster's machine, with the nodes of the `machines` found at start that it
    takes on (the others leave); and the address of each of those already running."""
    adopted = adopted_nodes(config, machines, clock.now())
    taken = {node.node_id for node in adopted}
    cluster = c.ClusterMachine(
        config,
        clock,
        nodes=adopted,
        leaving=[m.node_id for m in machines if m.node_id not in taken],
        validate=validate,
    )
    running = [(m.node_id, m.address) for m in machines if m.address and m.node_id in taken]
    return cluster, running


def adopted_nodes(config: ClusterConfig, machines: Sequence[Machine], now: float) -> list[Node]:
    """The nodes of machines found at start that are booting or running, of a known type:
    booting until they report, or until main_service connects to the running ones."""
    standby_types = (group.node_type for group in config.standby.nodes)
    types = {t.name: t for t in (*config.node_types, *standby_types)}
    return [
        Node(node_id=m.node_id, node_type=types[m.node_type], state=NodeState.BOOTING, since=now)
        for m in machines
        if m.node_type in types and m.status in _ADOPTED
    ]
