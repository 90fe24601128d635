"""Browser tests: Debian's Chromium driven by Playwright against a real WAS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import chromium as chromium_fixtures

browser = chromium_fixtures.browser      # one Chromium per session, a clean slate per test
chromium = chromium_fixtures.chromium
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


@pytest.fixture
def shot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def save(page, name: str) -> None:
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return save
