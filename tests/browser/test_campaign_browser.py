"""Campaign times in a real headless Chromium: a past "send at" is an error
on the form, and pausing then resuming a campaign due in two days with the
buttons leaves it scheduled for its own time (also after the page's live
refresh)."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "was"))

from was_site import add_users  # noqa: E402

from tests.browser.test_was_browser import login, start_was  # noqa: E402
from ums import campaigns as campaign_api  # noqa: E402
from ums.store import addressbooks  # noqa: E402
from ums.store import templates as template_store  # noqa: E402

SEOUL = ZoneInfo("Asia/Seoul")


async def seed(suite) -> None:
    now = suite.ctx.clock()
    async with suite.ctx.db.begin() as conn:
        book = await addressbooks.ensure_book(conn, "VIP customers")
        for number in range(2):
            contact = await addressbooks.save_contact(conn, {"name": f"Customer {number}",
                                                             "email": f"c{number}@example.com"}, now)
            await addressbooks.add_to_book(conn, book, contact)
        await template_store.save(conn, "notice", "email", now, kind="transactional", subject="Notice",
                                  body_text="Hello {{ name }}")


async def test_past_start_is_shown_and_pause_resume_keeps_the_due_time(tmp_path, sqlite_url, start_suite,
                                                                       browser, shot):
    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    await add_users(suite.ctx.db)
    await seed(suite)
    due = (suite.ctx.clock() + timedelta(days=2)).astimezone(SEOUL).replace(second=0, microsecond=0)
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        await login(page, base, "marketer")
        await page.goto(base + "/campaigns")
        await page.fill("input[name=name]", "Two days out")
        await page.select_option("select[name=template]", "email:notice")
        await page.select_option("select[name=kind]", "transactional")
        await page.select_option("select[name=books]", "VIP customers")
        await page.fill("input[name=schedule_at]", "2020-01-01T09:00")
        await page.click("form[action='/campaigns'] button.primary")
        error = await page.locator("#campaign-error").inner_text()
        assert "in the past" in error and "2020-01-01 09:00 KST" in error
        assert await page.locator("input[name=name]").input_value() == "Two days out"
        await shot(page, "campaign-past-start")

        await page.fill("input[name=schedule_at]", due.strftime("%Y-%m-%dT%H:%M"))
        await page.click("form[action='/campaigns'] button.primary")
        await page.wait_for_url("**/campaigns/*")
        shown = f"{due:%Y-%m-%d %H:%M} KST"
        assert await page.locator("#schedule-at").inner_text() == shown
        for button, state in (("#campaign-schedule", "scheduled"), ("#campaign-pause", "paused"),
                              ("#campaign-resume", "scheduled")):
            await page.click(button)
            await page.wait_for_load_state("networkidle")
            assert await page.locator("[data-state]").inner_text() == state, button
        assert await page.locator("#schedule-at").inner_text() == shown
        assert f"not started: starts {shown}" in await page.locator("#holds").inner_text()
        await page.wait_for_timeout(2500)      # the live refresh has run at least once
        assert await page.locator("[data-state]").inner_text() == "scheduled"
        assert await page.locator("[data-count=total]").inner_text() == "0"
        async with suite.ctx.db.connect() as conn:
            row = await campaign_api.find(conn, "Two days out")
        assert (row["state"], row["schedule_at"], row["started_at"]) == ("scheduled", due, None)

        await page.fill("input[name=at]", "2020-01-01T09:00")
        await page.click("#campaign-schedule")
        assert "in the past" in await page.locator("#campaign-error").inner_text()
        assert await page.locator("[data-state]").inner_text() == "scheduled"
        await shot(page, "campaign-resumed")
    finally:
        await page.close()
