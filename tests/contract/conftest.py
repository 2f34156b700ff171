"""Fixtures the contract bindings share: a clock tests drive, and free loopback ports."""

from __future__ import annotations

import pytest

from burla.core.clock import ManualClock
from tests.components.redis import free_loopback_port
from tests.contract.containers import FreePort


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_000_000.0)


@pytest.fixture
def free_port() -> FreePort:
    """Loopback ports nothing listens on, never the same one twice in a test."""
    handed_out: set[int] = set()

    def free_port() -> int:
        while (port := free_loopback_port()) in handed_out:
            pass
        handed_out.add(port)
        return port

    return free_port
