"""schemathesis against a live main_service on loopback: every operation of its OpenAPI
schema, with generated parameters and bodies, gets a documented status (never a 500), a
documented content type and body, and the service goes on serving."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest
import schemathesis
import uvicorn
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi import checks

from burla.backends.memory import MemoryBlobStore, MemoryComputeProvider, MemoryStore
from burla.core.clock import WallClock
from burla.core.models import ClusterConfig, NodeType
from burla.services import serving
from burla.services.main_service.app import create_app
from burla.services.main_service.job_routes import FRAMES, MAX_WAIT_S
from burla.services.main_service.service import MainService
from tests.strategies import frame_bytes, garbage_headers, json_values

pytestmark = pytest.mark.integration
TOKEN = "t0ken-of-this-cluster"
AUTH = {"authorization": f"Bearer {TOKEN}"}
EXAMPLES = 100
"""Generated requests per operation."""
CHECKS = [
    schemathesis.checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]

jobs = st.builds(
    lambda job_id, n, inputs: [
        ({"job_id": job_id, "spec": {"n_inputs": n, "func_cpu": 1, "func_ram": 1}}, b"f"),
        *inputs,
    ],
    st.from_regex(r"job-[a-z0-9]{4,12}", fullmatch=True) | st.text(max_size=12),
    st.integers(-1, 3),
    st.lists(
        st.tuples(st.fixed_dictionaries({"i": st.integers(-1, 3) | json_values}), st.binary()),
        max_size=4,
    ),
)
frame_bodies = st.one_of(
    st.binary(max_size=200),
    jobs.map(lambda frames: b"".join(frame_bytes(*f) for f in frames)),
    st.lists(st.tuples(garbage_headers(("job",)), st.binary(max_size=16)), max_size=4).map(
        lambda frames: b"".join(frame_bytes(*f) for f in frames)
    ),
)
"""Bodies of POST /jobs: bytes, jobs of any spec and inputs, frames of any header."""
schemathesis.openapi.media_type(FRAMES, frame_bodies)


@contextlib.asynccontextmanager
async def live_main_service() -> AsyncIterator[str]:
    """main_service on a loopback port, with memory backends; at most 4 nodes, so that a
    generated standby definition starts no more."""
    clock = WallClock()
    node_type = NodeType(name="n2", cpus=2, ram_gb=8)
    service = MainService(
        config=ClusterConfig(node_types=(node_type,), max_nodes=4),
        store=MemoryStore(clock),
        blobs=MemoryBlobStore(clock),
        compute=MemoryComputeProvider(clock),
        clock=clock,
        main_url="http://127.0.0.1:1",
        boot_env={},
        token="s",
    )
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(service, TOKEN), log_level="warning", lifespan="off")
    server = serving.Server(config)
    async with anyio.create_task_group() as tasks:
        await service.run(tasks)
        tasks.start_soon(lambda: server.serve(sockets=[sock]))
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
            await anyio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        server.should_exit = True
        tasks.cancel_scope.cancel()
    sock.close()


@pytest.fixture(scope="module")
def main_url() -> Iterator[str]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(live_main_service()) as url,
    ):
        yield url


def test_the_schema_describes_the_job_routes_served_in_front_of_fastapi(main_url: str) -> None:
    paths = httpx.get(f"{main_url}/openapi.json", headers=AUTH).json()["paths"]
    assert "application/x-burla-frames" in paths["/jobs"]["post"]["requestBody"]["content"]
    assert {"200", "400", "413"} <= set(paths["/jobs"]["post"]["responses"])
    assert {"200", "404"} <= set(paths["/jobs/{job_id}/events"]["get"]["responses"])


def test_every_operation_answers_as_documented(main_url: str) -> None:
    api = schemathesis.openapi.from_url(f"{main_url}/openapi.json", headers=AUTH)
    tried = []
    for found in api.get_all_operations():
        operation = found.ok()
        tried.append(f"{operation.method.upper()} {operation.path}")
        # Requests the schema allows, and requests it does not (which must be refused).
        cases = st.one_of(*(operation.as_strategy(mode) for mode in schemathesis.GenerationMode))

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=cases)
        def answers_as_documented(case: schemathesis.Case) -> None:
            # A job may be asked to wait up to MAX_WAIT_S for its answer.
            case.call_and_validate(
                base_url=main_url, headers=AUTH, checks=CHECKS, timeout=MAX_WAIT_S + 10
            )

        answers_as_documented()
        assert httpx.get(f"{main_url}/health", headers=AUTH).json() == {"ok": True}
    assert {"POST /jobs", "GET /jobs/{job_id}/events", "PUT /standby"} <= set(tried)
