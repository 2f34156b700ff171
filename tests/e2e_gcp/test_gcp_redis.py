"""A cloud cluster whose database is Redis (e.g. Memorystore) instead of Firestore."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from burla import remote_parallel_map
from burla.backends.redis import RedisStore
from burla.client.map import Session, job_results
from burla.services.store_keys import job_key
from tests.components.redis import RedisServer
from tests.e2e.waiting import wait_for
from tests.e2e_gcp.conftest import GcpCluster, free_port

pytestmark = pytest.mark.integration


def triple(x: int) -> int:
    return 3 * x


@pytest.fixture
def redis_cluster(
    gcp_cluster: GcpCluster,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[GcpCluster, str]]:
    """The session's cloud cluster, started again under another name with a Redis store."""
    namespace = f"e2e-{secrets.token_hex(3)}"
    port = free_port()
    command = [
        arg for arg in gcp_cluster.command if not arg.startswith(("--port=", "--token-file="))
    ]
    command += [
        f"--port={port}",
        f"--token-file={tmp_path / 'token'}",
        f"--store={redis_server.url}?namespace={namespace}",
    ]
    name = f"rd-{secrets.token_hex(3)}"
    cluster = dataclasses.replace(
        gcp_cluster,
        command=command,
        env={**gcp_cluster.env, "BURLA_GCP_CLUSTER": name},
        url=f"http://127.0.0.1:{port}",
        token_file=tmp_path / "token",
        cluster=name,
        log=tmp_path / "main_service.log",
        process=None,
    )
    cluster.start()
    try:
        monkeypatch.setenv("BURLA_MAIN_URL", cluster.url)
        monkeypatch.setenv("BURLA_TOKEN", cluster.token)
        monkeypatch.setenv("BURLA_CONFIG", "/dev/null")
        yield cluster, namespace
    finally:
        Session.close_all()
        cluster.stop()


def test_a_cloud_cluster_runs_on_a_redis_store(
    redis_cluster: tuple[GcpCluster, str], redis_server: RedisServer
) -> None:
    cluster, namespace = redis_cluster
    cluster.wait_for_standby()
    job_id = remote_parallel_map(triple, range(20), backend="gcp", spinner=False, detach=True)
    assert job_results(job_id, backend="gcp") == [3 * x for x in range(20)]

    async def state() -> object:
        async with RedisStore.from_url(redis_server.url, namespace=namespace) as store:
            doc = await store.get(job_key(job_id))
            return doc.data["state"] if doc else None

    # The record is written just after the job's end is announced.
    wait_for(lambda: asyncio.run(state()) == "succeeded", timeout_s=30)
