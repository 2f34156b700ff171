"""main_service's token check as a browser meets it: the dashboard's page is public, every
piece of cluster data needs a token, in the header or in the cookie the login sets. Any
user signs in with their own token and sees the cluster and only their own jobs; a job's
own token signs no one in."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core import wire
from burla.core.clock import WallClock
from burla.core.models import ClusterConfig, NodeType
from burla.core.protocols import Store
from burla.services.cluster_keys import JOB_TOKEN_PREFIX, node_secret
from burla.services.main_service.app import create_app
from burla.services.main_service.dashboard import COOKIE
from burla.services.main_service.service import MainService

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


def new_service(store: Store) -> MainService:
    clock = WallClock()
    return MainService(
        config=ClusterConfig(node_types=(NodeType(name="n2", cpus=2, ram_gb=8),)),
        store=store,
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )


class Cluster:
    def __init__(self, service: MainService, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.service = service
        self.app = app
        self.client = client

    async def token(self, name: str) -> str:
        """A new user's token."""
        assert (await self.client.post("/users", json={"name": name}, headers=ADMIN)).is_success
        made = await self.client.post("/tokens", json={"user": name}, headers=ADMIN)
        return str(made.json()["token"])

    async def submit(self, token: str, job_id: str) -> None:
        spec = {"n_inputs": 2, "func_cpu": 1, "func_ram": 1}
        frames = [({"job_id": job_id, "spec": spec}, b"function")]
        frames += [({"i": n}, b"input") for n in range(2)]
        answer = await self.client.post(
            "/jobs", content=wire.encode_many(frames), headers={"authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text

    async def feed(self, path: str, token: str) -> tuple[int, dict[str, Any]]:
        """A dashboard feed's status and its first event (or its error), as a browser
        signed in with `token` gets them. Read from the ASGI app itself: httpx's ASGI
        transport waits for the whole body, and a feed never ends."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"main"), (b"cookie", f"{COOKIE}={token}".encode())],
            "client": ("127.0.0.1", 1),
            "server": ("main", 80),
        }
        status, body, asked = 0, b"", False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if asked:
                await anyio.sleep_forever()  # the browser stays until it has its event
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}

        with anyio.fail_after(10), anyio.CancelScope() as reading:

            async def send(message: dict[str, Any]) -> None:
                nonlocal status, body
                if message["type"] == "http.response.start":
                    status = message["status"]
                    return
                body += message.get("body", b"")
                if status == 200 and b"\n\n" in body:
                    reading.cancel()

            await self.app(scope, receive, send)
        if status == 200:
            return status, json.loads(body.split(b"\n\n")[0].removeprefix(b"data: "))
        return status, json.loads(body)


@pytest.fixture
async def cluster():
    service = new_service(MemoryStore(WallClock()))
    app = create_app(service, TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
            yield Cluster(service, app, client)
        tasks.cancel_scope.cancel()


@pytest.fixture
def client(cluster: Cluster) -> httpx.AsyncClient:
    return cluster.client


@pytest.mark.parametrize(
    "path", ["/cluster", "/jobs", "/dashboard/feed/cluster", "/jobs/job-12345678/logs"]
)
async def test_data_needs_the_token(client, path):
    assert (await client.get(path)).status_code == 401
    wrong = {"cookie": f"{COOKIE}=not-it"}
    assert (await client.get(path, headers=wrong)).status_code == 401
    prefix = {"cookie": f"{COOKIE}={TOKEN}x"}
    assert (await client.get(path, headers=prefix)).status_code == 401


async def test_the_token_in_header_or_cookie_lets_in(client):
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/cluster", headers=bearer)).status_code == 200
    cookies = {"cookie": f"theme=dark; {COOKIE}={TOKEN}; other=1"}
    answer = await client.get("/cluster", headers=cookies)
    assert answer.status_code == 200
    assert answer.json()["cpus_busy"] == 0


@pytest.mark.parametrize(
    "path", ["/dashboard", "/dashboard/static/dashboard.js", "/dashboard/static/dashboard.css"]
)
async def test_the_page_and_its_files_are_public(client, path):
    answer = await client.get(path)
    assert answer.status_code == 200
    assert TOKEN not in answer.text


async def test_login_sets_an_http_only_cookie(client):
    answer = await client.post("/dashboard/login", content=f"token={TOKEN}")
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert (await client.get("/cluster")).status_code == 200  # the client kept the cookie


async def test_a_wrong_token_is_refused_at_login(client):
    answer = await client.post("/dashboard/login", content="token=guess")
    assert answer.status_code == 303
    assert answer.headers["location"].endswith("#denied")
    assert "set-cookie" not in answer.headers
    assert (await client.get("/cluster")).status_code == 401


async def test_a_link_with_the_token_signs_in_and_leaves_the_address(client):
    answer = await client.get("/dashboard", params={"token": TOKEN})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard"
    assert (await client.get("/jobs")).status_code == 200


async def test_a_user_signs_in_with_the_form(cluster):
    alice = await cluster.token("alice")
    answer = await cluster.client.post("/dashboard/login", content=f"token={alice}")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard"
    assert answer.headers["set-cookie"].startswith(f"{COOKIE}={alice};")
    assert (await cluster.client.get("/me")).json() == {"user": "alice"}  # the cookie's user


async def test_a_user_signs_in_with_a_link(cluster):
    bob = await cluster.token("bob")
    answer = await cluster.client.get("/dashboard", params={"token": bob})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard"
    assert (await cluster.client.get("/me")).json() == {"user": "bob"}


async def test_a_token_made_before_main_service_started_signs_in(cluster):
    alice = await cluster.token("alice")
    # A new main_service over the same Store, as after a restart: nothing has read the
    # tokens' hashes yet when the browser signs in.
    restarted = new_service(cluster.service.store)
    transport = httpx.ASGITransport(app=create_app(restarted, TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://main") as browser:
        answer = await browser.post("/dashboard/login", content=f"token={alice}")
        assert answer.headers["location"] == "/dashboard"
        assert (await browser.get("/me")).json() == {"user": "alice"}


async def test_a_jobs_token_and_the_node_secret_do_not_sign_in(cluster):
    alice = await cluster.token("alice")
    await cluster.submit(alice, "job-of-alice-1")
    job_token = cluster.service.job_tokens.make("job-of-alice-1", "alice")
    assert job_token.startswith(JOB_TOKEN_PREFIX)
    # The job's token is good for its code's own calls ...
    bearer = {"authorization": f"Bearer {job_token}"}
    assert (await cluster.client.get("/me", headers=bearer)).json() == {"user": "alice"}
    # ... but no one signs in to the dashboard with it, nor with the nodes' secret.
    for given in (job_token, node_secret(TOKEN)):
        for answer in (
            await cluster.client.post("/dashboard/login", content=f"token={given}"),
            await cluster.client.get("/dashboard", params={"token": given}),
        ):
            assert answer.status_code == 303
            assert answer.headers["location"].endswith("#denied")
            assert "set-cookie" not in answer.headers
    assert (await cluster.client.get("/me")).status_code == 401


async def test_a_users_feeds_show_the_cluster_and_only_their_jobs(cluster):
    alice, bob = await cluster.token("alice"), await cluster.token("bob")
    await cluster.submit(alice, "job-of-alice-2")
    await cluster.submit(bob, "job-of-bob-2")

    status, seen = await cluster.feed("/dashboard/feed/cluster", alice)
    assert status == 200
    assert [job["job_id"] for job in seen["jobs"]] == ["job-of-alice-2"]
    assert seen["jobs"][0]["owner"] == "alice"
    assert set(seen["cluster"]["jobs"]) == {"job-of-alice-2"}
    assert "job-of-bob-2" not in json.dumps(seen)  # not even on a node's row

    _, everything = await cluster.feed("/dashboard/feed/cluster", TOKEN)
    assert {job["job_id"] for job in everything["jobs"]} == {"job-of-alice-2", "job-of-bob-2"}
    # The cluster itself is no one's secret: every user sees its nodes and CPUs.
    for fact in ("cpus", "nodes_by_type", "standby", "jobs_running"):
        assert seen["cluster"][fact] == everything["cluster"][fact], fact

    status, job = await cluster.feed("/dashboard/feed/jobs/job-of-alice-2", alice)
    assert status == 200
    assert (job["job"]["job_id"], job["job"]["owner"]) == ("job-of-alice-2", "alice")
    assert job["letters"] == "qq"


async def test_another_users_job_feed_is_as_if_there_were_none(cluster):
    alice, bob = await cluster.token("alice"), await cluster.token("bob")
    await cluster.submit(alice, "job-of-alice-3")
    status, theirs = await cluster.feed("/dashboard/feed/jobs/job-of-alice-3", bob)
    _, nowhere = await cluster.feed("/dashboard/feed/jobs/job-of-nobody-3", bob)
    assert status == 404
    assert theirs["error"] == "NotFoundError"
    assert json.dumps(theirs).replace("alice", "nobody") == json.dumps(nowhere)
    assert (await cluster.feed("/dashboard/feed/jobs/job-of-alice-3", TOKEN))[0] == 200


async def test_the_page_cancels_only_the_owners_job(cluster):
    """The page's Cancel button posts to the job's cancel route with the cookie."""
    alice, bob = await cluster.token("alice"), await cluster.token("bob")
    await cluster.submit(alice, "job-of-alice-4")
    cancel = "/jobs/job-of-alice-4/cancel"
    refused = await cluster.client.post(cancel, headers={"cookie": f"{COOKIE}={bob}"})
    assert refused.status_code == 404
    assert cluster.service.jobs["job-of-alice-4"].state.value == "running"
    done = await cluster.client.post(cancel, headers={"cookie": f"{COOKIE}={alice}"})
    assert done.json() == {"job_id": "job-of-alice-4", "state": "canceled"}
