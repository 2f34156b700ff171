"""Headless Chromium for the dashboard's tests: Debian's /usr/bin/chromium, driven by
playwright, with a fresh profile and no traffic of its own (no updates, sync or
prefetching). Playwright starts it and stops it; it never downloads a browser."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "results" / "artifacts"
"""Where browser tests keep their screenshots (git-ignored)."""


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A page in a new browser with a profile of its own (no cookies from other tests).
    Playwright runs per test: its driver keeps an event loop that async tests must not meet."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run tools/components/chromium.sh (as root)")
    with (
        tempfile.TemporaryDirectory(prefix="burla-chromium-") as profile,
        sync_playwright() as driver,
    ):
        context = driver.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
