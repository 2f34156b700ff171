"""The compute contract bound to GceComputeProvider, with the real google-cloud-compute
client, on the fake Compute REST API of tests/fakes (tests/backends/gce.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.backends.gce import PROJECT, ZONE, boot, provider_on, vm_name
from tests.contract.compute import ComputeProviderContract, ComputeUnderTest
from tests.fakes.compute_api import FakeComputeApi

pytestmark = pytest.mark.integration


@pytest.fixture
async def compute_under_test(
    anyio_backend: str, compute_api: FakeComputeApi
) -> AsyncIterator[ComputeUnderTest]:
    compute = provider_on(compute_api)

    async def fail(node_id: str) -> None:
        compute_api.terminate(PROJECT, ZONE, vm_name(node_id))

    try:
        yield ComputeUnderTest(compute, boot, boot_timeout_s=10.0, fail=fail)
    finally:
        await compute.aclose()
        compute_api.reset()  # stops every VM the test started


class TestGceComputeProvider(ComputeProviderContract): ...
