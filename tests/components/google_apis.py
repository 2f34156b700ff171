"""The stand-ins of Google's REST APIs (tests/fakes/google_apis), served once per test session.

Each runs in the test process on a free 127.0.0.1 port of its own and knows one project,
PROJECT, numbered PROJECT_NUMBER. They are wired as Google's are: Firestore and Artifact
Registry answer SERVICE_DISABLED until Service Usage has their API enabled on the project
(a new project has neither). Tests that use them call `reset` when done, which forgets
what they made, the requests they recorded and the failures still to come.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests.fakes.google_apis.artifact_registry import FakeArtifactRegistry
from tests.fakes.google_apis.firestore_admin import FakeFirestoreAdmin
from tests.fakes.google_apis.resource_manager import FakeResourceManager
from tests.fakes.google_apis.rest_server import RestStandIn
from tests.fakes.google_apis.service_usage import FakeServiceUsage

PROJECT = "burla-test"
PROJECT_NUMBER = 123456789012
PROJECTS = {PROJECT: PROJECT_NUMBER}

StandIn = TypeVar("StandIn", bound=RestStandIn)


def _served(stand_in: StandIn) -> Iterator[StandIn]:
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.close()


@pytest.fixture(scope="session")
def service_usage_api() -> Iterator[FakeServiceUsage]:
    yield from _served(FakeServiceUsage(PROJECTS))


@pytest.fixture(scope="session")
def resource_manager_api() -> Iterator[FakeResourceManager]:
    yield from _served(FakeResourceManager(PROJECTS))


@pytest.fixture(scope="session")
def firestore_admin_api(service_usage_api: FakeServiceUsage) -> Iterator[FakeFirestoreAdmin]:
    def enabled(project: str) -> bool:
        return service_usage_api.is_enabled(project, "firestore.googleapis.com")

    yield from _served(FakeFirestoreAdmin(PROJECTS, api_enabled=enabled))


@pytest.fixture(scope="session")
def artifact_registry_api(service_usage_api: FakeServiceUsage) -> Iterator[FakeArtifactRegistry]:
    def enabled(project: str) -> bool:
        return service_usage_api.is_enabled(project, "artifactregistry.googleapis.com")

    yield from _served(FakeArtifactRegistry(PROJECTS, api_enabled=enabled))
