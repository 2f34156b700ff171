"""main_service's logic: carry out what the core decides, for the cluster and each job.

Two state machines from burla.core do the deciding: ClusterMachine (nodes, standby,
which nodes a job gets) and one InputMachine per job (leases, tries, timeouts). This
module feeds them what happened (a job arrived, a node booted, a node reported results)
and carries out the commands they return. It never unpickles user bytes.
"""

from __future__ import annotations

import collections
import json
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from burla.core import cluster as c
from burla.core import inputs as i
from burla.core import wire
from burla.core.clock import Clock
from burla.core.errors import (
    BurlaError,
    ClusterUnavailableError,
    ConflictError,
    ImageError,
    InvalidRequestError,
    NotFoundError,
)
from burla.core.inputs import Failure, InputMachine
from burla.core.models import (
    DEFAULT_PYTHON_VERSION,
    ClusterConfig,
    ContainerSpec,
    JobSpec,
    JobState,
    Node,
    NodeState,
)
from burla.core.protocols import (
    BlobStore,
    BootSpec,
    ComputeProvider,
    ImageMaker,
    MachineStatus,
    Store,
)
from burla.core.scheduling import node_type_for
from burla.services.cluster_keys import JobTokens, node_secret
from burla.services.main_service.jobs import JobRun, job_record, run_from_record
from burla.services.main_service.node_link import Dial, NodeLink, dial_tcp
from burla.services.main_service.packages import PackageBuilder
from burla.services.main_service.users import ADMIN, RETIRED, owner_of
from burla.services.store_keys import (
    JOBS_PREFIX,
    LEASE_S,
    RUNNING_PREFIX,
    STANDBY_KEY,
    job_key,
    queue_name,
    result_key,
    results_prefix,
    running_key,
)

JOB_ID = re.compile(r"[a-z0-9-]{8,64}")
UPLOADS = "uploads/"
FORGET_AFTER_S = 600.0
"""How long a finished job's results stay in memory for its client to read."""
MACHINE_LEASE_S = 1e9
"""Nodes renew their Store leases themselves; main_service learns of a lost node from its
ComputeProvider, so the input machine's own leases never run out."""

CREATE_BACKOFF_MAX_S = 60.0
CATCH_UP_FIRST_S = 1.0
CATCH_UP_MAX_S = 10.0
"""A job taken over after a restart, or one that lost a node, looks for results it was
not told of this often (at first more often)."""
CATCH_UP_FOR_S = 2 * LEASE_S
"""For how long it looks: a node that is gone (or cut off) may have written results it
never reported, until its machine is gone; once its leases have ended its inputs run
again elsewhere, so stopping costs no result."""

FAILURE_TEXT = {
    Failure.WORKER_DIED: "the worker running it died (os._exit, a crash, or out of memory)",
    Failure.OUT_OF_MEMORY: (
        "the worker running it went over func_ram={func_ram:g} GB and was stopped (out of "
        "memory); ask for more with func_ram=, or make the function use less memory"
    ),
    Failure.TIMED_OUT: "it ran past the job's timeout",
    Failure.LOST: "its node was lost too many times",
}


def upload_prefix(owner: str, job_id: str | None = None) -> str:
    """Where a job's function and big inputs are uploaded (signed URLs are made for keys
    under it only, and a job may refer to no other blob); without a job, the user's
    uploads for no job in particular (source archives)."""
    return f"{UPLOADS}{owner}/{job_id}/" if job_id else f"{UPLOADS}{owner}/"


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
        booting: tuple[str, ...] = (),
        validate: bool = False,
        dial: Dial = dial_tcp,
        images: ImageMaker | None = None,
    ) -> None:
        """`booting` names nodes of the first standby type already being started for
        this cluster; without any, `run()` starts the standby set. With `images`, a job
        may name an image not in the standby definition, or bring a Dockerfile: it is
        added to the definition and started on every node."""
        node_type = config.standby.nodes[0].node_type if config.standby.nodes else None
        adopted = [
            Node(node_id=n, node_type=node_type, state=NodeState.BOOTING, since=clock.now())
            for n in booting
            if node_type is not None
        ]
        self.cluster = c.ClusterMachine(config, clock, nodes=adopted, validate=validate)
        self.store = store
        self.blobs = blobs
        self.compute = compute
        self.clock = clock
        self.main_url = main_url
        self.boot_env = boot_env
        self.node_secret = node_secret(token)
        """What nodes know main_service by (they are booted with it in BURLA_SECRET)."""
        self.job_tokens = JobTokens(token)
        self.dial = dial
        self.validate = validate
        self.jobs: dict[str, JobRun] = {}
        self.packages = PackageBuilder(store, blobs, clock)
        self.images = images
        self._standby_lock = anyio.Lock()
        self._preparing: set[str] = set()
        """Jobs whose image or packages are being made, not yet in `jobs`."""
        self.links: dict[str, NodeLink] = {}
        self._creating: set[str] = set()
        self._deleting: set[str] = set()
        self._failed_creations = 0
        self.creation_errors: collections.deque[str] = collections.deque(maxlen=20)
        """Why the latest machines could not be made (quota, capacity) or deleted."""
        self._canceled_early: collections.deque[str] = collections.deque(maxlen=1000)
        self._tasks: TaskGroup | None = None
        self.last_activity = clock.now()

    async def run(self, tasks: TaskGroup) -> None:
        """Enter standby from the stored definition and watch the nodes."""
        self._tasks = tasks
        await self.store.put(STANDBY_KEY, self.cluster.config.standby.model_dump(mode="json"))
        if not self.cluster.nodes:
            await self.apply(self.cluster.handle(c.RestartCluster()))
        await self._take_over_jobs()
        tasks.start_soon(self._watch_nodes)

    async def _take_over_jobs(self) -> None:
        """Jobs an earlier main_service of this cluster left running go on from their
        records: what they finished is in the Store, the rest in their queues."""
        after = ""
        while listed := await self.store.list(RUNNING_PREFIX, after=after):
            after = listed[-1].key
            for entry in listed:
                doc = await self.store.get(job_key(entry.key.removeprefix(RUNNING_PREFIX)))
                if doc is None or doc.data.get("state") != JobState.RUNNING.value:
                    await self.store.delete(entry.key)  # it ended as the last one stopped
                    continue
                if "resume" not in doc.data:
                    continue
                run = run_from_record(doc.data, self.clock, validate=self.validate)
                run.listed_running = True
                self.jobs[run.spec.job_id] = run
                await self._catch_up(run)
                if not run.state.finished and await self._restore_image(run):
                    await self.apply(self.cluster.handle(c.JobSubmitted(run.spec)))
                    self._keep_catching_up(run)

    async def _restore_image(self, run: JobRun) -> bool:
        """Put a job taken over back on its custom image, which this main_service's standby
        definition lacks; a job whose image cannot be had any more fails, saying why."""
        image = run.spec.image
        if image is None or image in self.cluster.config.standby.images:
            return True
        try:
            if self.images is None:
                raise ImageError(f"this cluster cannot run images it does not keep: {image!r}")
            await self._add_to_standby(image)
        except BurlaError as error:
            run.error = f"its image {image!r} could not be started again: {error}"
            await self._finish(run, JobState.FAILED)
            return False
        return True

    async def _catch_up(self, run: JobRun) -> None:
        """Take in the results of a job taken over that are in the Store but not in its
        input machine: finished before the takeover, or told to the main_service that
        went (a node writes a result before it reports it)."""
        job_id = run.spec.job_id
        after = ""
        while docs := await self.store.list(results_prefix(job_id), after=after):
            after = docs[-1].key
            for doc in docs:
                await self._take_in(run, int(doc.key.rsplit("/", 1)[1]), doc.data)

    async def _take_in(self, run: JobRun, index: int, result: dict[str, Any]) -> None:
        """A result in the Store that no node reported to this main_service."""
        if run.machine.inputs[index].status.finished or run.state.finished:
            return
        kind = result["kind"]
        run.publish(wire.JobResult(index, kind), result["payload"])
        await self._job_events(run, i.InputRecorded(index, kind == "ok"))

    def _keep_catching_up(self, run: JobRun) -> None:
        """Catch up in a second, then after pauses that double, for CATCH_UP_FOR_S: one
        task per job does it, starting over for each new reason."""
        run.look_in_store_until = self.clock.now() + CATCH_UP_FOR_S
        if run.look_in_store_again is None:
            run.look_in_store_again = anyio.Event()
            self._spawn(self._catching_up, run)
        else:
            run.look_in_store_again.set()

    async def _catching_up(self, run: JobRun) -> None:
        assert run.look_in_store_again is not None
        pause = CATCH_UP_FIRST_S
        try:
            while not run.state.finished and self.clock.now() < run.look_in_store_until:
                with anyio.move_on_after(pause):
                    await run.look_in_store_again.wait()
                if run.look_in_store_again.is_set():
                    run.look_in_store_again, pause = anyio.Event(), CATCH_UP_FIRST_S
                    continue
                await self._catch_up(run)
                pause = min(pause * 2, CATCH_UP_MAX_S)
        finally:
            run.look_in_store_again = None

    # The cluster -----------------------------------------------------------------------
    async def restart(self, config: ClusterConfig | None = None) -> None:
        if config is not None:
            await self.store.put(STANDBY_KEY, config.standby.model_dump(mode="json"))
        await self.apply(self.cluster.handle(c.RestartCluster(config)))

    async def node_booted(self, node_id: str, address: str) -> None:
        assert self._tasks is not None
        try:
            link = await NodeLink.connect(
                node_id,
                address,
                self.node_secret,
                on_report=self.report,
                on_lost=self.node_failed,
                tasks=self._tasks,
                dial=self.dial,
            )
        except ClusterUnavailableError:
            await self.node_failed(node_id)
            return
        self._close_link(node_id)
        self.links[node_id] = link
        await self.apply(self.cluster.handle(c.NodeBooted(node_id)))

    async def node_failed(self, node_id: str) -> None:
        if node_id not in self.cluster.nodes:
            return
        job_id = self.cluster.nodes[node_id].job_id
        self._close_link(node_id)
        await self.apply(self.cluster.handle(c.NodeFailed(node_id)))
        job = self.jobs.get(job_id) if job_id else None
        if job is not None and not job.state.finished:
            await self._job_events(job, i.NodeLost(node_id))
            # What it finished but had not reported (a result is written, then acked,
            # then reported) is in the Store, and out of the queue: look for it there.
            self._keep_catching_up(job)

    async def apply(self, commands: list[c.ClusterCommand]) -> None:
        for command in commands:
            match command:
                case c.StartNode(node_id, node_type):
                    # A cloud VM takes seconds just to be created: many start side by side.
                    self._creating.add(node_id)
                    self._spawn(
                        self._create, BootSpec(node_id, node_type, self.main_url, self.boot_env)
                    )
                case c.AssignNodes(job, node_ids, workers):
                    for node_id, share in zip(node_ids, workers, strict=True):
                        self._spawn(self._assign, job, node_id, share)
                case c.DeleteNode(node_id):
                    self._close_link(node_id)
                    self._spawn(self._delete, node_id)
                case c.ResetNode(node_id):
                    await self._recycle(node_id, None, False)

    async def _create(self, boot: BootSpec) -> None:
        try:
            await self.compute.create(boot)
            self._failed_creations = 0
        except BurlaError as error:
            # Quota or capacity: the replacement would fail the same way at once, so each
            # failure in a row waits longer before it counts.
            self.creation_errors.append(f"{boot.node_id}: {error}")
            await anyio.sleep(min(CREATE_BACKOFF_MAX_S, 0.5 * 2**self._failed_creations))
            self._failed_creations += 1
            self._creating.discard(boot.node_id)
            await self.node_failed(boot.node_id)
        finally:
            self._creating.discard(boot.node_id)
        if boot.node_id not in self.cluster.nodes:  # given up while it was being made
            await self._delete(boot.node_id)

    async def _delete(self, node_id: str) -> None:
        """Delete a machine; one the provider will not delete yet (still starting, say)
        stays, and the next look at the machines tries again."""
        if node_id in self._deleting:
            return
        self._deleting.add(node_id)
        try:
            await self.compute.delete(node_id)
        except BurlaError as error:
            self.creation_errors.append(f"{node_id}: not deleted yet: {error}")
        finally:
            self._deleting.discard(node_id)

    async def _assign(self, job: JobSpec, node_id: str, workers: int) -> None:
        run = self.jobs.get(job.job_id)
        if run is None or run.state.finished:
            return
        request = {
            "op": "assign",
            "job": job.model_dump(mode="json"),
            "workers": workers,
            "token": self.job_tokens.make(job.job_id, run.owner),
        }
        if run.function is None:
            request["function_key"] = run.function_key
        if run.package_keys:
            request["packages"] = list(run.package_keys)
        if not await self._call_node(node_id, request, run.function or b""):
            await self.node_failed(node_id)

    async def _recycle(self, node_id: str, job_id: str | None, cancel: bool) -> None:
        """Back to standby after job `job_id`; `cancel` stops workers still running it.
        The node is ready for the next job at once: it carries out its connection's
        requests in order, so the reset lands before any new assignment (and a node that
        is gone is reported lost by its connection)."""
        reset = {"op": "reset", "job_id": job_id, "cancel": cancel}
        self._spawn(self._call_node, node_id, reset)
        await self.apply(self.cluster.handle(c.NodeBooted(node_id)))

    async def _call_node(self, node_id: str, request: dict[str, Any], payload: bytes = b"") -> bool:
        link = self.links.get(node_id)
        return link is not None and await link.request(request, payload)

    def _close_link(self, node_id: str) -> None:
        link = self.links.pop(node_id, None)
        if link is not None:
            self._spawn(link.aclose)

    async def _watch_nodes(self) -> None:
        """Nodes whose machine failed or vanished are lost; boots that hang are given up;
        machines of no node (left by a crash, or made after they were given up) go."""
        while True:
            await anyio.sleep(0.5)
            machines = {m.node_id: m for m in await self.compute.list()}
            for node_id in list(self.cluster.nodes):
                if node_id in self._creating:
                    continue  # its machine is being made; not listed yet
                machine = machines.get(node_id)
                if machine is None or machine.status is MachineStatus.FAILED:
                    await self.node_failed(node_id)
            for node_id in machines.keys() - self.cluster.nodes.keys() - self._creating:
                if machines[node_id].status is not MachineStatus.STOPPING:
                    self._spawn(self._delete, node_id)
            await self.apply(self.cluster.handle(c.Tick()))

    def _spawn(self, function: Callable[..., Any], *args: Any) -> None:
        assert self._tasks is not None
        self._tasks.start_soon(function, *args)

    # Jobs ------------------------------------------------------------------------------
    async def submit(
        self,
        spec: dict[str, Any],
        function: bytes | None,
        function_key: str | None,
        items: list[tuple[str, bytes]],
        job_id: str | None = None,
        uploads: Sequence[str] = (),
        owner: str = ADMIN,
    ) -> str:
        """Start a job. A client may name it (so that it can cancel a job whose submission
        it never saw answered); the name must be new. `uploads` are the blobs the client
        put through signed URLs for it (the function, big inputs): they go when it ends."""
        sources: dict[str, str] = spec.get("sources") or {}
        recipe: str | None = spec.get("dockerfile")
        if (
            not isinstance(sources, dict)
            or not all(isinstance(key, str) for key in sources.values())
            or not isinstance(recipe, str | None)
        ):
            raise InvalidRequestError(
                "a job's sources map requirements to uploaded keys, and its dockerfile is text"
            )
        if job_id is None:
            job_id = f"job-{self.clock.now():.0f}-{secrets.token_hex(4)}"
        elif not JOB_ID.fullmatch(job_id):
            raise InvalidRequestError(
                f"job id {job_id!r} is not 8-64 of a-z, 0-9 and '-'; let the cluster name it"
            )
        elif job_id in self.jobs or job_id in self._preparing or await self._stored(job_id):
            raise ConflictError(f"there is a job {job_id} already; use a new id")
        own = upload_prefix(owner, job_id)
        outside = [key for key in uploads if not key.startswith(own)]
        # Source archives are uploaded before the job, once per cluster: the user's own.
        outside += [key for key in sources.values() if not key.startswith(upload_prefix(owner))]
        if outside:
            raise InvalidRequestError(
                f"a job may refer only to blobs uploaded for it (under {own}), "
                f"not {outside[0]!r}; ask POST /uploads for this job's URLs"
            )
        uploads = [*uploads, *sources.values()]
        fields = {key: value for key, value in spec.items() if key not in ("dockerfile", "sources")}
        job = JobSpec.model_validate({**fields, "job_id": job_id})
        if job.n_inputs != len(items):
            raise InvalidRequestError(
                f"the job says it has {job.n_inputs} inputs but {len(items)} came; send them all"
            )
        if function is None and function_key is None:
            raise InvalidRequestError("a job needs a function: send it inline or upload it first")
        # Images are made and packages installed before the job exists: what cannot be
        # fails the call. Meanwhile a resent request for the same job is refused.
        self._preparing.add(job_id)
        try:
            job, package_keys = await self._prepare(job, recipe, sources)
        finally:
            self._preparing.discard(job_id)
        machine = InputMachine(
            job.n_inputs,
            self.clock,
            retries=job.retries,
            validate=self.validate,
        )
        blob_prefixes = {key.rsplit("/", 1)[0] + "/" for key in uploads}
        run = JobRun(
            job,
            function,
            function_key,
            machine,
            owner,
            blob_prefixes=blob_prefixes,
            package_keys=package_keys,
        )
        self.jobs[job_id] = run
        self.last_activity = self.clock.now()
        await self.store.push(queue_name(job_id), items)
        # The record is for later readers: it is written once the nodes have their work.
        self._spawn(self._save, run)
        if machine.state.finished:
            await self._finish(run, machine.state)
            return job_id
        if job_id in self._canceled_early:
            await self._job_events(run, i.CancelJob())
            return job_id
        await self.apply(self.cluster.handle(c.JobSubmitted(job)))
        return job_id

    async def _prepare(
        self, job: JobSpec, recipe: str | None, sources: dict[str, str]
    ) -> tuple[JobSpec, tuple[str, ...]]:
        """The job on its image, made and started if new, and the archives of its
        packages, installed if new."""
        if recipe is not None:
            job = job.model_copy(update={"image": await self._image_from(recipe)})
        if job.image is not None and self.images is not None:
            await self._add_to_standby(job.image)
        node_type_for(self.cluster.config, job)  # refuse what no node can run, before writing
        python = self._python_of(job)
        if job.python_version is not None and job.python_version != python:
            raise InvalidRequestError(
                f"this job comes from Python {job.python_version} but the workers of its "
                f"image run Python {python}, where its pickled function cannot load; call "
                f"from Python {python}, or use an image with Python {job.python_version}"
            )
        if not job.packages:
            return job, ()
        return job, await self.packages.ensure(job.packages, python, sources)

    async def _stored(self, job_id: str) -> bool:
        return await self.store.get(job_key(job_id)) is not None

    async def _image_from(self, recipe: str) -> str:
        if self.images is None:
            raise ImageError(
                "this cluster cannot build images; build one where its nodes can run it "
                "and pass image= instead of dockerfile="
            )
        return await self.images.build(recipe)

    async def _add_to_standby(self, image: str) -> None:
        """Put `image` in the standby definition and start its containers on every node:
        the first job on it waits for that, later ones find it warm."""
        assert self.images is not None
        if image in self.cluster.config.standby.images:
            return
        async with self._standby_lock:
            standby = self.cluster.config.standby
            if image in standby.images:
                return
            python = await self.images.check(image)
            containers = (*standby.containers, ContainerSpec(image=image, python_version=python))
            standby = standby.model_copy(update={"containers": containers})
            self.cluster.config = self.cluster.config.model_copy(update={"standby": standby})
            await self.store.put(STANDBY_KEY, standby.model_dump(mode="json"))
            specs = [spec.model_dump(mode="json") for spec in containers]
            async with anyio.create_task_group() as group:
                for node_id in list(self.links):
                    group.start_soon(self._call_node, node_id, {"op": "standby", "specs": specs})

    def _python_of(self, job: JobSpec) -> str:
        """The Python version of the workers the job runs in."""
        containers = self.cluster.config.standby.containers
        image = job.image or self.cluster.config.standby.default_image
        python = next((s.python_version for s in containers if s.image == image), None)
        return python or DEFAULT_PYTHON_VERSION

    async def _save(self, run: JobRun) -> None:
        """The job's record in the Store: its spec, its state, and why it failed. Writes
        take turns and each writes the state of its turn, so the last one is the latest.
        A running job is listed as such before its record is written, and no longer once
        its record says it ended: every running record is listed."""
        job_id = run.spec.job_id
        async with run.record_lock:
            if not run.state.finished and not run.listed_running:
                await self.store.put(running_key(job_id), {})
                run.listed_running = True
            record = job_record(run)
            await self.store.put(job_key(job_id), record)
            if record["state"] != JobState.RUNNING.value and run.listed_running:
                await self.store.delete(running_key(job_id))
                run.listed_running = False

    async def retire_owner(self, user: str) -> int:
        """Hand a removed user's jobs, running or not, to a name no user can have, so that
        a user of the same name added later does not get them; how many there were."""
        retired = f"{user} {RETIRED}"
        held = [run for run in self.jobs.values() if run.owner == user]
        for run in held:
            run.owner = retired  # a running job's token stops working with it
            await self._save(run)
        count, after = len(held), ""
        while records := await self.store.list(JOBS_PREFIX, after=after):
            after = records[-1].key
            for doc in records:
                held_here = doc.key.removeprefix(JOBS_PREFIX) in self.jobs
                if owner_of(doc.data) == user and not held_here:
                    await self._retire_record(doc.key, user, retired)
                    count += 1
        return count

    async def _retire_record(self, key: str, user: str, retired: str) -> None:
        while (doc := await self.store.get(key)) is not None and owner_of(doc.data) == user:
            try:
                await self.store.put(key, {**doc.data, "owner": retired}, if_version=doc.version)
                return
            except ConflictError:
                continue  # written meanwhile: look again

    def job_of_token(self, token: str) -> JobRun | None:
        """The running job whose token this is: code running in it calls back as its owner."""
        job_id = self.job_tokens.job_of(token, self._running_owner)
        return None if job_id is None else self.jobs[job_id]

    def _running_owner(self, job_id: str) -> str | None:
        run = self.jobs.get(job_id)
        return None if run is None or run.state.finished else run.owner

    def job(self, job_id: str) -> JobRun:
        run = self.jobs.get(job_id)
        if run is None:
            raise NotFoundError(f"no job {job_id} is running here; check the id with `burla jobs`")
        return run

    async def cancel(self, job_id: str) -> None:
        """Cancel a job; one not seen yet (its submission still on the way) is canceled
        the moment it arrives."""
        run = self.jobs.get(job_id)
        if run is None:
            if JOB_ID.fullmatch(job_id):
                self._canceled_early.append(job_id)
            return
        if not run.state.finished:
            await self._job_events(run, i.CancelJob())

    async def report(self, node_id: str, events: Any, payload: bytes) -> None:
        """What a node saw, in order: claims, results, printed lines, lost workers."""
        for event, data in wire.read_reports(events, payload):
            run = self.jobs.get(event.job_id) if event.job_id else None
            if run is None or run.state.finished:
                continue
            match event:
                case wire.ClaimReport(_, worker, indices, receipts):
                    run.receipts.update(zip(indices, receipts, strict=True))
                    run.worker_nodes[worker] = node_id
                    lease = MACHINE_LEASE_S
                    await self._job_events(run, i.InputsClaimed(worker, node_id, indices, lease))
                case wire.ResultReport(_, worker, index, kind):
                    if kind == "ok":
                        if not run.machine.inputs[index].status.finished:
                            run.publish(wire.JobResult(index, "ok"), data)
                        await self._job_events(run, i.InputSucceeded(worker, index))
                    else:
                        run.raised[index] = (kind, data)
                        await self._job_events(run, i.InputRaised(worker, index))
                case wire.LineReport(_, index, stream, text):
                    if stream == wire.TRACEBACK_STREAM:
                        run.keep_traceback(index, text)
                    else:
                        run.publish(wire.JobLine(index, stream, text))
                case wire.DeathReport(_, worker, running, out_of_memory):
                    await self._job_events(run, i.WorkerDied(worker, running, out_of_memory))
                case wire.TimeoutReport(_, worker, index):
                    await self._job_events(run, i.InputTimedOut(worker, index))
                case wire.JobErrorReport(_, message):
                    run.error = message
                    await self._job_events(run, i.CancelJob())
        self.last_activity = self.clock.now()

    async def _job_events(self, run: JobRun, event: i.InputEvent) -> None:
        await self._carry_out(run, run.machine.handle(event))

    async def _carry_out(self, run: JobRun, commands: list[i.InputCommand]) -> None:
        job_id = run.spec.job_id
        requeue: list[str] = []
        for command in commands:
            match command:
                case i.Requeue(indices):
                    requeue += [run.receipts[n] for n in indices if n in run.receipts]
                case i.Discard(_, indices):
                    stale = [run.receipts[n] for n in indices if n in run.receipts]
                    await self.store.ack(queue_name(job_id), stale)
                case i.KillWorker(worker, _):
                    node_id = run.worker_nodes.get(worker)
                    if node_id is not None:
                        kill = {"op": "kill_worker", "name": worker}
                        self._spawn(self._call_node, node_id, kill)
                case i.RecordFailure(index, failure, attempts):
                    await self._record_failure(run, index, failure, attempts)
                case i.FinishJob(state):
                    await self._finish(run, state)
        if requeue:
            await self.store.renew(queue_name(job_id), requeue, lease_s=0)

    async def _record_failure(
        self, run: JobRun, index: int, failure: Failure, attempts: int
    ) -> None:
        job_id = run.spec.job_id
        if failure is Failure.RAISED:
            kind, payload = run.raised.pop(index)
        else:
            why = FAILURE_TEXT[failure].format(func_ram=run.spec.func_ram)
            message = (
                f"input {index} failed after {attempts} tries: {why}"
                if attempts
                else f"input {index} failed: {why}"
            )
            kind, payload = failure.value, json.dumps({"message": message}).encode()
        doc = {"kind": kind, "payload": payload}
        await self.store.put_many({result_key(job_id, index): doc}, create_only=True)
        receipt = run.receipts.get(index)
        if receipt is not None:
            await self.store.ack(queue_name(job_id), [receipt])
        run.publish(wire.JobResult(index, kind), payload)

    async def _finish(self, run: JobRun, state: JobState) -> None:
        job_id = run.spec.job_id
        if run.error is not None:
            state = JobState.FAILED
        run.state = state
        run.publish(wire.JobDone(state.value, run.error))  # results are durable already
        await self._save(run)
        # A recycled node stops the job and resets in one request; a deleted one just goes.
        cancel = state is not JobState.SUCCEEDED
        for command in self.cluster.handle(c.JobEnded(job_id)):
            if isinstance(command, c.ResetNode):
                await self._recycle(command.node_id, job_id, cancel)
            else:
                await self.apply([command])
        self.last_activity = self.clock.now()
        if run.blob_prefixes:
            self._spawn(self._delete_blobs, sorted(run.blob_prefixes))
        self._spawn(self._forget_later, job_id, FORGET_AFTER_S)

    async def _delete_blobs(self, prefixes: list[str]) -> None:
        """A finished job's inputs and function (its results stay), after its client has
        had its answer."""
        for prefix in prefixes:
            await self.blobs.delete_prefix(prefix)

    async def _forget_later(self, job_id: str, after_s: float) -> None:
        """Drop a finished job's stream from memory; its results stay in the Store."""
        await anyio.sleep(after_s)
        self.jobs.pop(job_id, None)

    def cluster_status(self) -> dict[str, Any]:
        nodes = [
            {
                "node_id": n.node_id,
                "type": n.node_type.name,
                "cpus": n.node_type.cpus,
                "state": n.state.value,
                "job_id": n.job_id,
            }
            for n in sorted(self.cluster.nodes.values(), key=lambda n: n.node_id)
        ]
        ready = sum(1 for n in self.cluster.nodes.values() if n.state is NodeState.READY)
        return {
            "nodes": nodes,
            "ready": ready,
            "jobs": {j: r.state.value for j, r in self.jobs.items()},
            "standby": self.cluster.config.standby.model_dump(mode="json"),
            "creation_errors": list(self.creation_errors),
        }
