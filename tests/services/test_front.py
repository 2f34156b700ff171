"""main_service serves the routes a cold start needs before FastAPI is loaded: a request
for any other route waits for the FastAPI app to be built and gets the answer the whole
app gives; the app is built once, whoever asks."""

from __future__ import annotations

import re
import threading
import time

import anyio
import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core.clock import ManualClock, WallClock
from burla.core.limits import RequestLimits
from burla.core.models import (
    ClusterConfig,
    NodeType,
    StandbyDefinition,
    StandbyGroup,
)
from burla.services.cluster_keys import node_secret
from burla.services.main_service import front
from burla.services.main_service.app import api_routes, create_app
from burla.services.main_service.front import LaterApp, load_when_quiet, serve_first
from burla.services.main_service.service import MainService
from burla.services.main_service.users import Users

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
NODE = {"authorization": f"Bearer {node_secret(TOKEN)}"}
NODE_TYPE = NodeType(name="n2", cpus=2, ram_gb=8)
LIMITS = RequestLimits.from_environ({})
ENDLESS = {("GET", "/dashboard/feed/cluster")}
"""Routes whose answer never ends (a live feed): only their status is read."""


def new_service(
    standby_nodes: int = 1, clock: WallClock | ManualClock | None = None
) -> MainService:
    clock = clock or WallClock()
    groups = (StandbyGroup(node_type=NODE_TYPE, count=standby_nodes),) if standby_nodes else ()
    return MainService(
        config=ClusterConfig(node_types=(NODE_TYPE,), standby=StandbyDefinition(nodes=groups)),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token=TOKEN,
    )


@pytest.fixture
async def service():
    service = new_service()
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        yield service
        tasks.cancel_scope.cancel()


def client_of(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://main")


async def test_the_routes_of_a_cold_start_answer_before_fastapi_is_built(service):
    app, later = serve_first(service, TOKEN, LIMITS)
    (node_id,) = service.cluster.nodes  # the standby node, booting
    async with client_of(app) as client:
        health = await client.get("/health", headers=ADMIN)
        unknown_node = await client.post("/nodes/n-9/booted", json={"address": "a:1"}, headers=NODE)
        other_build = {"address": "127.0.0.1:1", "build": "0123456789ab"}
        refused = await client.post(f"/nodes/{node_id}/booted", json=other_build, headers=NODE)
        no_job = await client.get("/jobs/job-12345678/events", headers=ADMIN)
        bad_job = await client.post("/jobs", content=b"not frames", headers=ADMIN)
        no_token = await client.get("/health")
    assert (health.status_code, health.json()) == (200, {"ok": True})
    assert unknown_node.status_code == 404
    assert refused.json()["error"] == "VersionMismatchError"
    assert no_job.status_code == 404
    assert bad_job.status_code == 400
    assert no_token.status_code == 401
    assert not later.loaded


async def test_a_nodes_booted_body_is_refused_as_fastapi_refuses_bodies(service):
    app, _ = serve_first(service, TOKEN, LIMITS)
    async with client_of(app) as client:
        bad = await client.post("/nodes/n-1/booted", json={"address": "no port"}, headers=NODE)
        not_json = await client.post("/nodes/n-1/booted", content=b"{", headers=NODE)
    assert bad.status_code == 400
    assert bad.json()["error"] == "InvalidRequestError"
    assert bad.json()["message"].startswith("POST /nodes/n-1/booted was refused: body.address:")
    assert not_json.status_code == 400
    assert not_json.json()["message"].startswith("POST /nodes/n-1/booted was refused: body")


async def test_a_request_for_another_route_waits_for_the_app_and_gets_its_answer(service):
    app, later = serve_first(service, TOKEN, LIMITS)
    whole = create_app(service, TOKEN, LIMITS)
    asks = [
        ("GET", "/me", ADMIN),
        ("GET", "/users", ADMIN),
        ("GET", "/jobs", ADMIN),
        ("GET", "/jobs/job-12345678", ADMIN),
        ("GET", "/no/such/route", ADMIN),
        ("GET", "/dashboard", {}),
    ]
    answers: dict[int, httpx.Response] = {}
    async with client_of(app) as client:

        async def ask(n: int) -> None:
            method, path, headers = asks[n]
            answers[n] = await client.request(method, path, headers=headers)

        async with anyio.create_task_group() as tasks:
            for n in range(len(asks)):
                tasks.start_soon(ask, n)
    assert later.loaded
    async with client_of(whole) as client:
        for n, (method, path, headers) in enumerate(asks):
            expected = await client.request(method, path, headers=headers)
            assert (answers[n].status_code, answers[n].content) == (
                expected.status_code,
                expected.content,
            ), path


async def test_the_app_is_built_once_while_requests_wait_for_it():
    builds: list[str] = []
    built = threading.Event()

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    def build() -> ASGIApp:
        builds.append(threading.current_thread().name)
        time.sleep(0.2)  # long enough for every request below to come meanwhile
        built.set()
        return answer

    later = LaterApp(build)
    async with client_of(later) as client:
        answers: dict[str, bytes] = {}

        async def ask(path: str) -> None:
            answers[path] = (await client.get(path)).content

        async with anyio.create_task_group() as tasks:
            for n in range(5):
                tasks.start_soon(ask, f"/path-{n}")
            tasks.start_soon(later.load)
    assert answers == {f"/path-{n}": f"/path-{n}".encode() for n in range(5)}
    assert len(builds) == 1
    assert builds[0] != threading.main_thread().name  # the event loop went on meanwhile


async def test_a_build_that_failed_is_tried_again_by_the_next_request():
    tries = []

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def build() -> ASGIApp:
        tries.append(1)
        if len(tries) == 1:
            raise ImportError("a module is missing")
        return answer

    later = LaterApp(build)
    with pytest.raises(ImportError):
        await later.load()
    assert not later.loaded
    assert await later.load() is answer
    assert len(tries) == 2


def route_requests(service: MainService) -> list[tuple[str, str]]:
    """Every route of the FastAPI app, as a request with each path parameter filled in."""
    app = api_routes(service, Users(service.store, TOKEN, service.clock))
    return [
        (method, re.sub(r"\{[^}]+\}", "x", route.path))
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods)
    ]


async def test_every_route_of_the_full_app_answers_through_the_front_door(service):
    app, later = serve_first(service, TOKEN, LIMITS)
    requests = route_requests(service)
    assert len(requests) > 20
    async with client_of(app) as client:
        for method, path in requests:
            if (method, path) in ENDLESS:
                continue
            answer = await client.request(method, path, headers=ADMIN)
            # The router's own refusals (no such route, or not by this method) say so
            # after the path; a route's own 404 names what it did not find.
            assert answer.status_code != 405, (method, path)
            assert not answer.text.endswith(': Not Found"}'), (method, path, answer.text)
    assert later.loaded


async def test_the_app_is_built_once_the_cluster_has_been_quiet_a_while(monkeypatch):
    monkeypatch.setattr(front, "QUIET_POLL_S", 0.01)
    clock = ManualClock()
    service = new_service(standby_nodes=0, clock=clock)
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        _, later = serve_first(service, TOKEN, LIMITS)
        tasks.start_soon(load_when_quiet, later, service)
        await anyio.sleep(0.05)
        assert not later.loaded  # quiet, but not for QUIET_S yet
        clock.advance(front.QUIET_S)
        with anyio.fail_after(5):
            await built(later)
        tasks.cancel_scope.cancel()


async def test_a_booting_node_holds_the_build_back_but_a_request_does_not(monkeypatch):
    monkeypatch.setattr(front, "QUIET_POLL_S", 0.01)
    clock = ManualClock()
    service = new_service(standby_nodes=1, clock=clock)
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        app, later = serve_first(service, TOKEN, LIMITS)
        waiting = anyio.Event()

        async def load() -> None:
            await load_when_quiet(later, service)
            waiting.set()

        tasks.start_soon(load)
        clock.advance(10 * front.QUIET_S)
        await anyio.sleep(0.05)
        assert not later.loaded  # the standby node still boots
        assert not front.quiet(service, front.QUIET_S)
        async with client_of(app) as client:
            assert (await client.get("/me", headers=ADMIN)).json() == {"user": "admin"}
        with anyio.fail_after(5):
            await waiting.wait()  # the request built it: nothing is left to wait for
        tasks.cancel_scope.cancel()


async def built(later: LaterApp) -> None:
    while not later.loaded:  # noqa: ASYNC110 - LaterApp offers no event
        await anyio.sleep(0.01)
