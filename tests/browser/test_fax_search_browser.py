"""Fax text in a real headless Chromium (issue #19, must-show 1 in WAS): a
3-page Korean fax rendered by UMS's fax path reaches MAS over SMTP as a fax
gateway sends it; its owner searches WAS for a word of its second page and
finds it, the word marked; the message shows each page with its recognised
text under it, the word under page 2; another user's search finds nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "was"))

from test_was_browser import login  # noqa: E402
from was_site import add_users  # noqa: E402

from tests import korean_fax  # noqa: E402
from tests.conftest import make_config  # noqa: E402
from tests.helpers import eventually, split_address  # noqa: E402
from ums.store import mailbox as mailbox_store  # noqa: E402


async def test_the_owner_finds_a_fax_by_a_word_of_its_second_page_and_reads_it_under_the_page(
        tmp_path, sqlite_url, start_suite, browser, shot):
    suite = await start_suite(make_config(tmp_path, sqlite_url), ["was", "mas"])
    base = "http://" + suite.services["was"].address
    ids = await add_users(suite.ctx.db)
    async with suite.ctx.db.begin() as conn:
        await mailbox_store.assign(conn, "fax@ums.local", ids["user"], suite.ctx.clock())
    host, port = split_address(suite.services["mas"].address)
    tiff = await korean_fax.render(tmp_path / "render")
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=30, start_tls=False) as client:
        await client.sendmail("fax-gateway@fax.bank.example", ["fax@ums.local"],
                              korean_fax.gateway_mail("fax@ums.local", tiff))

    async def read():
        async with suite.ctx.db.connect() as conn:
            return not await mailbox_store.pending_bodies(conn)

    await eventually(read, timeout=90, interval=0.25)
    word = korean_fax.SECOND_PAGE_WORD
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        await login(page, base, "user")
        await page.goto(base + "/inbox")
        await page.fill("#search", word)
        await page.click("form.search button.primary")
        await page.wait_for_load_state("load")
        assert await page.locator("#count").inner_text() == "1–1 of 1"
        assert await page.locator("table.messages .snippet mark").first.inner_text() == word
        assert await page.locator("table.messages .badge").first.inner_text() == "fax"
        await shot(page, "fax-search-results")

        await page.click(f"text={korean_fax.SUBJECT}")
        await page.wait_for_load_state("networkidle")
        assert await page.locator("figure.fax img.fax-page").count() == 3
        assert word in await page.locator("#fax-page-2 figcaption").inner_text()
        assert word not in await page.locator("#fax-page-1 figcaption").inner_text()
        assert "감사합니다" in await page.locator("#fax-page-3 figcaption").inner_text()
        await shot(page, "fax-pages-with-text")
        await page.context.clear_cookies()

        await login(page, base, "marketer")
        await page.goto(base + "/inbox")
        await page.fill("#search", word)
        await page.click("form.search button.primary")
        await page.wait_for_load_state("load")
        assert await page.locator("#count").inner_text() == "0 messages"
    finally:
        await page.close()
