"""main_service's life in a simulation: the real service on the simulated cloud, served
through its real HTTP app, killed by a main_restart fault and started again, or ended by a
backend's failure that outlasted its retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from burla.backends.gcp.prices import list_price_in
from burla.core.errors import BackendError
from burla.services.main_service.app import create_app
from burla.services.main_service.service import MainService
from burla.sim.clock import VirtualClock
from burla.sim.compute import ADDRESS_SCHEME, SimComputeProvider
from burla.sim.cpu import ServiceCpu, charged_to, wait_for_cpu
from burla.sim.nodes import first_backend_error
from burla.sim.pipes import PipeEnd
from burla.sim.scenario import Scenario
from burla.sim.storage import SimStorage

DROPPED = 599
"""The status a simulated user gets for a request main_service died holding: its
connection dropped, so it cannot know whether the request was carried out."""


class MainHost:
    """The main_service of the moment; while it is down, HTTP requests get 503."""

    def __init__(
        self,
        scenario: Scenario,
        storage: SimStorage,
        compute: SimComputeProvider,
        clock: VirtualClock,
        token: str,
        validate: bool,
        dial: Callable[[str], Awaitable[PipeEnd]],
        cpu: ServiceCpu | None = None,
    ) -> None:
        self.scenario = scenario
        self.kept_images = scenario.kept_images
        """The images every main_service keeps warm: the scenario's, then those built."""
        self._storage, self._compute, self._clock = storage, compute, clock
        self._token, self._validate, self._dial = token, validate, dial
        self.cpu = cpu
        """main_service's CPU, when the services' CPU is charged."""
        self.main = self._new_main()
        self._app = create_app(self.main, token)
        self._scope: anyio.CancelScope | None = None
        self.down = False
        self.back = anyio.Event()
        """Set when a main_service that was down is serving again."""
        self._restarting = anyio.Lock()
        """One main_service at a time: a restart waits for the one before to finish."""
        self.exited: tuple[float, BackendError] | None = None
        """When main_service ended for a backend's failure (its retries ran out), and why:
        as the process would exit, and no main_service runs after it."""
        self.exit = anyio.Event()
        self._in_flight: set[anyio.CancelScope] = set()
        """Requests main_service is answering: cut when it dies, as its connections are."""

    def _new_main(self) -> MainService:
        return MainService(
            config=self.scenario.cluster_config(self.kept_images),
            store=self._storage.services_store,
            blobs=self._storage.services_blobs,
            compute=self._compute,
            clock=self._clock,
            main_url=f"{ADDRESS_SCHEME}main",
            boot_env={},
            token=self._token,
            validate=self._validate,
            dial=self._dial,
            list_price=list_price_in(self.scenario.region),
        )

    async def run(self, *, task_status: TaskStatus[None]) -> None:
        """main_service's life: until it is killed (a main_restart fault)."""
        with anyio.CancelScope() as scope, charged_to(self.cpu):
            self._scope = scope
            try:
                async with anyio.create_task_group() as tasks:
                    await self.main.run(tasks)
                    task_status.started()
                    await anyio.sleep_forever()
            except* BackendError as failed:
                self.exited = (self._clock.elapsed(), first_backend_error(failed))
                self.down = True
                for request in self._in_flight:
                    request.cancel()
                self.exit.set()

    async def serve_http(self, scope: Any, receive: Any, send: Any) -> None:
        """main_service's HTTP app, or no answer but 503 while it is down."""
        if self.down:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"main_service is down"})
            return
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                await wait_for_cpu()  # the answer leaves once main_service computed it
            await send(message)

        with anyio.CancelScope() as cut:
            self._in_flight.add(cut)
            try:
                with charged_to(self.cpu):  # the app runs in the user's task
                    await self._app(scope, receive, sending)
            finally:
                self._in_flight.discard(cut)
        if cut.cancelled_caught and not started:
            # main_service died holding the request: the client's connection drops.
            await send({"type": "http.response.start", "status": DROPPED, "headers": []})
            await send({"type": "http.response.body", "body": b"main_service died"})

    async def restart(self, down_s: float, tasks: TaskGroup) -> None:
        """main_service dies; after `down_s` another starts in `tasks`, deletes the machines
        it finds (as a cloud cluster's main_service does) and takes the jobs over from the
        Store."""
        async with self._restarting:
            assert self._scope is not None
            self.down, self.back = True, anyio.Event()
            self._scope.cancel()
            for request in self._in_flight:
                request.cancel()
            await anyio.sleep(down_s)
            for machine in await self._compute.list():
                await self._compute.delete(machine.node_id)
            self.main = self._new_main()
            self._app = create_app(self.main, self._token)
            await tasks.start(self.run)
            self.down = False
            self.back.set()

    async def keep_image(self, image: str) -> None:
        """Add a newly built image to the standby definition: main_service restarts the
        standby set with it (one that is down starts with it)."""
        self.kept_images = (*self.kept_images, image)
        if self.down:
            await self.back.wait()
        else:
            with charged_to(self.cpu):
                await self.main.restart(self.scenario.cluster_config(self.kept_images))

    async def node_booted(self, node_id: str) -> None:
        """A node's POST /nodes/{id}/booted; a main_service that is down hears nothing
        (the node's machine goes when the next one starts)."""
        if not self.down:
            with charged_to(self.cpu):
                await self.main.node_booted(node_id, f"{ADDRESS_SCHEME}{node_id}")
