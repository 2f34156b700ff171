"""Fixtures shared by every test: async tests run on asyncio through anyio's plugin."""

import os

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


@pytest.fixture(autouse=True, scope="session")
def _jobs_remembered_apart(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The jobs tests start are remembered in a file of the tests' own, not the user's."""
    if "BURLA_JOBS_FILE" not in os.environ:
        os.environ["BURLA_JOBS_FILE"] = str(tmp_path_factory.mktemp("jobs") / "jobs.jsonl")


# Every property test runs at least 300 examples, in CI too; no per-example deadline.
settings.register_profile("default", max_examples=300, deadline=None)
settings.load_profile("default")
