"""Headless Chromium for the browser tests: one browser per test session (per
xdist worker), because starting Chromium costs about a second of CPU and the
suite is CPU-bound; each test still gets a clean slate — the contexts (and
their pages, cookies, downloads) it opened are closed when it ends."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("UMS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
async def chromium():
    """The session's Chromium, launched the first time a test asks for it."""
    if not shutil.which(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: install the Debian package chromium (scripts/bootstrap test)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def browser(chromium):
    """The session's Chromium for one test; what the test opened is closed after it."""
    yield chromium
    for context in list(chromium.contexts):
        await context.close()
