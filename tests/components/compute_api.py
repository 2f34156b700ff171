"""The fake Compute Engine API (tests/fakes/compute_api.py), served once per test session.

It runs in the test process on a free 127.0.0.1 port; its VMs are local processes, all
stopped when the session ends. Tests that use it call `reset` when done, which stops
their VMs and forgets their instances, operations and recorded requests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.compute_api import FakeComputeApi


@pytest.fixture(scope="session")
def compute_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeComputeApi]:
    api = FakeComputeApi(tmp_path_factory.mktemp("compute-api"))
    api.start()
    try:
        yield api
    finally:
        api.close()
