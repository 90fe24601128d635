"""The campaign workflow as a marketer works it in headless Chromium, with
PASS sending to a real SMTP sink on loopback (screenshots under
test-output/screenshots/):

* the check panel of a campaign with an unknown book, a field nobody has and
  a start in the past says so and Schedule is refused until overridden;
* the test-send button delivers one message, and its preview page shows
  exactly the bodies the sink received (label, sender block, footer);
* with tracking on, opening the pixel and following a link of the delivered
  message count once each on the stats page, however often repeated, and a
  tampered redirect is refused;
* Clone and Delete work from the campaign page; the operator dashboard shows
  the queue by state and the send, bounce and refusal rates.
"""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aiosmtpd.smtp import SMTP as SMTPServer
from playwright.async_api import Error as PlaywrightError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "was"))

from was_site import add_users  # noqa: E402

from tests.browser.test_was_browser import login  # noqa: E402
from tests.conftest import make_config  # noqa: E402
from tests.helpers import eventually  # noqa: E402
from tests.integration.was.test_campaign_workflow import Sink, make_campaign, parts, seed  # noqa: E402
from ums import campaigns as campaign_api  # noqa: E402
from ums.db.models import campaigns  # noqa: E402
from ums.store import templates as template_store  # noqa: E402

SEOUL = ZoneInfo("Asia/Seoul")


async def start(tmp_path, sqlite_url, start_suite):
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTPServer(sink, hostname="sink.test"), "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    suite = await start_suite(make_config(tmp_path, sqlite_url, email__relay_port=str(sink.port)), ["was", "pass"])
    await add_users(suite.ctx.db)
    await seed(suite.ctx)
    return suite, "http://" + suite.services["was"].address, sink, server


def on_site(base: str, url: str) -> str:
    """A link of a message (under ``[was] public_url``) on the running WAS."""
    found = urlsplit(url)
    return base + found.path + (f"?{found.query}" if found.query else "")


async def follow(page, url: str) -> list:
    """Follow a link in the browser; the redirect responses it met on the way
    (the offer's own site is not reachable from the test machine)."""
    hops = []

    def seen(response):
        if response.status in (301, 302, 303, 307, 308):
            hops.append(response)

    page.on("response", seen)
    try:
        await page.goto(url)
    except PlaywrightError as exc:
        assert "ERR_NAME_NOT_RESOLVED" in str(exc) or "ERR_CONNECTION" in str(exc), exc
    finally:
        page.remove_listener("response", seen)
    return hops


async def test_check_blocks_then_test_send_preview_tracking_clone_and_delete(tmp_path, sqlite_url, start_suite,
                                                                            browser, shot):
    suite, base, sink, server = await start(tmp_path, sqlite_url, start_suite)
    ctx = suite.ctx
    now = ctx.clock()
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), asyncio.ensure_future(dialog.accept())))
    try:
        # --- a campaign that must not go: unknown book, a field nobody has, its time has passed
        async with ctx.db.begin() as conn:
            await template_store.save(conn, "branch-offer", "email", now, kind="advertising", subject="혜택",
                                      body_text="{{ branch }} 지점에서 {{ name }}님께", sender_name="UMS은행",
                                      sender_contact="1588-0000")
            spec = campaign_api.from_dict({"name": "broken", "kind": "advertising", "template": "branch-offer",
                                           "audience": {"books": ["Offers", "Lost book"]}})
            broken = await campaign_api.create(conn, spec, now)
            await conn.execute(campaigns.update().where(campaigns.c.id == broken)
                               .values(schedule_at=now - timedelta(hours=3)))
        await login(page, base, "marketer")
        await page.goto(f"{base}/campaigns/{broken}")
        panel = await page.locator("#check").inner_text()
        assert "Blocks: no address book named 'Lost book'" in panel
        assert await page.locator("#check li.error").count() == 3
        assert "{{ branch }}" in panel and "in the past" in panel
        assert await page.locator("#check-audience").inner_text() == "2"
        assert "2 current" in await page.locator("#check-consent").inner_text()
        await shot(page, "campaign-check-blocking")
        later = (now + timedelta(days=1)).astimezone(SEOUL).strftime("%Y-%m-%dT%H:%M")
        await page.fill("input[name=at]", later)
        await page.click("#campaign-schedule")
        await page.wait_for_load_state("networkidle")
        error = await page.locator("#campaign-error").inner_text()
        assert "not ready to schedule" in error and "Lost book" in error
        assert await page.locator("[data-state]").first.inner_text() == "draft"
        await shot(page, "campaign-check-refused")
        await page.fill("input[name=at]", later)
        await page.check("#campaign-force")
        await page.click("#campaign-schedule")
        await page.wait_for_url("**flash=Campaign+is+now+scheduled**")

        # --- a good one: test send, and its preview is what arrived
        good = await make_campaign(ctx, "december")
        await page.goto(f"{base}/campaigns/{good}")
        assert "Ready to schedule." in await page.locator("#check-verdict").inner_text()
        await page.fill("#test-to", "tester@bank.example")
        await page.click("#campaign-test")
        await page.wait_for_url("**test=*")
        await eventually(lambda: sink.to("tester@bank.example"), timeout=20)
        [received] = sink.to("tester@bank.example")
        subject, text, body = parts(received)
        await page.click("#test-preview")
        await page.wait_for_load_state("networkidle")
        assert await page.locator("#preview-subject").text_content() == subject
        assert await page.locator("#preview-text").text_content() == text
        assert await page.locator("#preview-html").text_content() == body
        assert subject.startswith("(광고)") and "발신: UMS은행 (1588-0000)" in text and "무료수신거부" in text
        frame = page.frame_locator("#preview-frame")
        assert "혜택 보기" in await frame.locator("a").first.inner_text()
        await shot(page, "campaign-preview-equals-sink")

        # --- tracking on, start now; the pixel and a link of the delivered message count once each
        await page.goto(f"{base}/campaigns/{good}")
        await page.click("#campaign-tracking")
        await page.wait_for_url("**flash=Tracking+on**")
        assert await page.locator("#tracking-state").inner_text() == "on"
        await page.click("#campaign-start-now")
        await page.wait_for_url("**flash=Campaign+is+now+scheduled**")
        await eventually(lambda: sink.to("kim@example.com"), timeout=20)
        _, _, delivered = parts(sink.to("kim@example.com")[0])
        pixel = on_site(base, re.search(r'<img src="([^"]+/t/o/[^"]+)"', delivered).group(1))
        link = on_site(base, re.search(r'<a href="([^"]+/t/c/[^"]+)"', delivered).group(1).replace("&amp;", "&"))
        reader = await browser.new_page()
        for _ in range(3):
            assert (await reader.goto(pixel)).status == 200
        for _ in range(2):
            hops = await follow(reader, link)
            assert [(hop.status, hop.headers.get("location")) for hop in hops] == [
                (302, "https://bank.example/offer?a=1&b=2")]
        tampered = await page.goto(link.replace("offer", "evil", 1))
        assert tampered.status == 404 and page.url.startswith(base)
        await shot(page, "campaign-tampered-redirect-refused")

        async def counted():
            await page.goto(f"{base}/campaigns/{good}")
            return await page.locator("[data-stat=sent]").inner_text() == "2"

        await eventually(counted, timeout=15)
        assert await page.locator("[data-stat=opened]").inner_text() == "1"
        assert await page.locator("[data-stat=clicked]").inner_text() == "1"
        assert await page.locator("#chart-metrics polyline[data-series=opened]").count() == 1
        await shot(page, "campaign-stats-tracking")

        # --- clone and delete
        await page.click("#campaign-clone")
        await page.wait_for_url("**flash=Copied+from**")
        assert await page.locator("h1").inner_text() == "Campaign: december (copy)"
        assert await page.locator("#tracking-state").inner_text() == "on"
        await shot(page, "campaign-cloned")
        await page.click("#campaign-delete")
        await page.wait_for_url("**/campaigns?flash=*")
        assert dialogs and "Delete this campaign" in dialogs[-1]
        names = await page.locator("table a").all_inner_texts()
        assert "december (copy)" not in names and "december" in names and "broken" in names
        await shot(page, "campaign-deleted")

        # --- the operator's dashboard
        operator = await browser.new_page(viewport={"width": 1280, "height": 900})
        await login(operator, base, "operator")
        await operator.goto(f"{base}/dashboard")
        assert await operator.locator("[data-rate=sent]").inner_text() == "3"
        assert await operator.locator("#chart-rate").count() == 1
        await shot(operator, "operator-dashboard")
    finally:
        await page.close()
        server.close()
