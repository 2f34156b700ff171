"""The fake IAM Admin API (tests/fakes/iam_api.py), served once per test session.

It runs in the test process on a free 127.0.0.1 port, with one project, IAM_PROJECT; tests
may add others to its `projects`. Tests that use it call `reset` when done, which forgets
their service accounts, policies, queued faults and recorded calls, and restores `projects`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.iam_api import FakeIamApi

IAM_PROJECT = "burla-test"


@pytest.fixture(scope="session")
def iam_api() -> Iterator[FakeIamApi]:
    api = FakeIamApi(projects=[IAM_PROJECT])
    api.start()
    try:
        yield api
    finally:
        api.close()
