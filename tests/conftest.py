"""Fixtures shared by every test: async tests run on asyncio through anyio's plugin."""

import pytest
from hypothesis import settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# Every property test runs at least 300 examples, in CI too; no per-example deadline.
settings.register_profile("default", max_examples=300, deadline=None)
settings.load_profile("default")
