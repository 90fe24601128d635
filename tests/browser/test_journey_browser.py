"""Must-show 6: the flow page of a journey in a real headless Chromium draws
every step of the sample flow as a box with the number of customers at it now
and the number who passed through it; a user without the marketer role is
refused the page."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "was"))

from was_site import add_users  # noqa: E402

from tests.browser.test_was_browser import login, start_was  # noqa: E402
from ums.db.models import contacts  # noqa: E402
from ums.journeys import definitions, engine  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "samples" / "journey-winback.json"


async def seed(db, now) -> None:
    """Five customers in the sample journey: three have had the email and wait two days, two have not started."""
    async with db.begin() as conn:
        await conn.execute(insert(contacts), [{"customer_id": f"C{n}", "email": f"c{n}@example.com",
                                               "timezone": "Asia/Seoul"} for n in range(5)])
        ids = list((await conn.execute(select(contacts.c.id).order_by(contacts.c.id))).scalars())
        await engine.create(conn, definitions.load(SAMPLE.read_bytes()), "marketing", now)
        runs = await engine.enter(conn, "winback", ids, "cli", now)
    walker = engine.Engine(db)
    for run_id in runs[:3]:
        assert await walker.advance(run_id, now)


async def test_the_flow_page_shows_the_counts_at_each_step(tmp_path, sqlite_url, start_suite, browser, shot):
    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    await add_users(suite.ctx.db)
    await seed(suite.ctx.db, suite.ctx.clock())
    page = await browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        await login(page, base, "marketer")
        await page.goto(base + "/journeys")
        assert await page.locator("[data-active=winback]").inner_text() == "5"
        await page.click("text=winback")
        await page.wait_for_url("**/journeys/winback")
        boxes = page.locator(".step")
        assert await boxes.count() == 7
        assert await page.locator("#step-1").is_visible()
        at = {step: await page.locator(f"[data-at='{step}']").inner_text()
              for step in ("mail", "two-days", "opened?", "call", "answered?", "fax", "done")}
        passed = {step: await page.locator(f"[data-passed='{step}']").inner_text() for step in ("mail", "two-days")}
        assert at == {"mail": "2", "two-days": "3", "opened?": "0", "call": "0", "answered?": "0", "fax": "0",
                      "done": "0"}
        assert passed == {"mail": "3", "two-days": "0"}
        assert await page.locator("#journey-active").inner_text() == "5"
        flow = await page.locator("#flow").inner_text()
        assert "wait 2 days" in flow and "opened → done" in flow and "otherwise → call" in flow
        await shot(page, "journey-flow")

        await page.goto(base + "/logout")
        await login(page, base, "user")
        response = await page.goto(base + "/journeys/winback")
        assert response.status == 403
        response = await page.goto(base + "/journeys/nope")
        assert response.status in (403, 404)
    finally:
        await page.close()
