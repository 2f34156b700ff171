"""The compute contract bound to GceComputeProvider, with the real google-cloud-compute
client, on the fake Compute REST API of tests/fakes (tests/backends/gce.py): spot VMs too,
preempted as Compute Engine preempts them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio.to_thread
import pytest

from burla.core.protocols import BootSpec
from tests.backends.gce import NODE_TYPE, PROJECT, ZONE, boot, provider_on, vm_name
from tests.contract.compute import ComputeProviderContract, ComputeUnderTest, SpotComputeContract
from tests.fakes.compute_api import FakeComputeApi

pytestmark = pytest.mark.integration


@pytest.fixture
async def compute_under_test(
    anyio_backend: str, compute_api: FakeComputeApi
) -> AsyncIterator[ComputeUnderTest]:
    compute = provider_on(compute_api)

    spot_type = NODE_TYPE.model_copy(update={"spot": True})

    async def fail(node_id: str) -> None:
        compute_api.terminate(PROJECT, ZONE, vm_name(node_id))

    async def preempt(node_id: str) -> None:
        await anyio.to_thread.run_sync(compute_api.preempt, PROJECT, ZONE, vm_name(node_id))

    try:
        yield ComputeUnderTest(
            compute,
            boot,
            boot_timeout_s=10.0,
            fail=fail,
            spot_boot_spec=lambda node_id: BootSpec(node_id, spot_type, "http://127.0.0.1:1"),
            preempt=preempt,
        )
    finally:
        await compute.aclose()
        compute_api.reset()  # stops every VM the test started


class TestGceComputeProvider(ComputeProviderContract): ...


class TestGceSpotVms(SpotComputeContract): ...
