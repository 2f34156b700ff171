"""main_service's token check as a browser meets it: the dashboard's page is public, every
piece of cluster data needs the token, in the header or in the cookie the login sets."""

from __future__ import annotations

import httpx
import pytest

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core.clock import WallClock
from burla.core.models import ClusterConfig
from burla.services.main_service.app import create_app
from burla.services.main_service.dashboard import COOKIE
from burla.services.main_service.service import MainService

pytestmark = pytest.mark.anyio
TOKEN = "t0ken-of-this-cluster"


@pytest.fixture
async def client():
    clock = WallClock()
    service = MainService(
        config=ClusterConfig(),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )
    transport = httpx.ASGITransport(app=create_app(service, TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
        yield client


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
