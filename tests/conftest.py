"""Fixtures shared by every test: async tests run on asyncio through anyio's plugin."""

import pytest
from hypothesis import settings

# The real components' session fixtures, registered once: every module that needs an
# emulator or daemon shares the one the session started.
pytest_plugins = [
    "tests.components.chromium",
    "tests.components.compute_api",
    "tests.components.docker",
    "tests.components.firestore",
    "tests.components.gcs",
    "tests.components.google_apis",
    "tests.components.iam_api",
    "tests.components.redis",
    "tests.components.registry",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# Every property test runs at least 300 examples, in CI too; no per-example deadline.
settings.register_profile("default", max_examples=300, deadline=None)
settings.load_profile("default")
