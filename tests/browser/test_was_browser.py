"""WAS in a real headless Chromium: log in, read mail safely, view a fax, play
voice mail, compose and send, schedule a campaign and watch its progress."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "was"))

from was_site import PASSWORD, add_mailbox, add_users  # noqa: E402

from tests.conftest import make_config  # noqa: E402
from ums.db.models import deliveries  # noqa: E402
from ums.store import addressbooks  # noqa: E402
from ums.store import templates as template_store  # noqa: E402


class Tracker:
    """A 'remote' image host on loopback that counts every request it gets."""

    def __init__(self):
        self.hits = 0
        self.server = None

    async def start(self) -> str:
        async def handle(reader, writer):
            self.hits += 1
            await reader.read(1024)
            writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: image/gif\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    def close(self):
        self.server.close()


async def start_was(tmp_path, sqlite_url, start_suite):
    suite = await start_suite(make_config(tmp_path, sqlite_url), ["was"])
    return suite, "http://" + suite.services["was"].address


async def login(page, base: str, username: str) -> None:
    await page.goto(base + "/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button.primary")
    await page.wait_for_load_state("networkidle")


async def test_reading_mail_fax_and_voice_in_the_browser(tmp_path, sqlite_url, start_suite, browser, shot):
    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    user_ids = await add_users(suite.ctx.db)
    tracker = Tracker()
    remote = await tracker.start()
    ids = await add_mailbox(suite.ctx.db, user_ids["user"], remote)
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), asyncio.ensure_future(dialog.dismiss())))
    await page.add_init_script("window.__messages = []; addEventListener('message', e => __messages.push(e.data));")
    try:
        await login(page, base, "user")
        assert page.url.endswith("/inbox")
        assert await page.locator("table.messages tr").count() == 4
        await shot(page, "inbox")

        # the hostile email: shown, but nothing in it runs or loads
        await page.goto(f"{base}/inbox/{ids['email']}")
        frame = page.frame_locator("#mail-body")
        await frame.locator("h1").wait_for()
        assert await frame.locator("h1").inner_text() == "Hello from the bank"
        await frame.locator("a", has_text="click me").click()
        await frame.locator("p").first.hover()
        await page.wait_for_timeout(500)
        assert await page.evaluate("window.__messages") == []
        assert dialogs == []
        assert tracker.hits == 0
        assert await page.title() != "pwned"
        inner = page.frames[1]
        assert await inner.evaluate("document.scripts.length") == 0
        assert await inner.evaluate("[...document.querySelectorAll('*')].filter(e => [...e.attributes]"
                                    ".some(a => a.name.startsWith('on'))).length") == 0
        await shot(page, "email")

        # the fax: both pages render as images
        await page.goto(f"{base}/inbox/{ids['fax']}")
        pages = page.locator("img.fax-page")
        assert await pages.count() == 2
        await page.wait_for_function("[...document.querySelectorAll('img.fax-page')].every(i => i.complete && i.naturalWidth > 0)")
        await shot(page, "fax")

        # the voice mail: a playable audio element
        await page.goto(f"{base}/inbox/{ids['voice']}")
        player = page.locator("audio#voice-player")
        await page.wait_for_function("document.getElementById('voice-player').readyState >= 1")
        duration = await player.evaluate("a => a.duration")
        assert 0.9 < duration < 1.1
        assert await player.evaluate("a => a.canPlayType('audio/wav')") != ""
        assert await player.evaluate("a => a.error") is None
        await shot(page, "voice")
    finally:
        tracker.close()
        await page.close()


async def test_compose_send_and_campaign_progress_in_the_browser(tmp_path, sqlite_url, start_suite, browser, shot):
    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    await add_users(suite.ctx.db)
    now = suite.ctx.clock()
    async with suite.ctx.db.begin() as conn:
        book = await addressbooks.ensure_book(conn, "VIP customers")
        for number in range(3):
            contact = await addressbooks.save_contact(
                conn, {"name": f"Customer {number}", "email": f"c{number}@example.com", "grade": "VIP"}, now)
            await addressbooks.add_to_book(conn, book, contact)
        await template_store.save(conn, "autumn-offer", "email", now, kind="advertising",
                                  subject="Autumn offer for {{ name }}", body_html="<p>Hello {{ name }}</p>",
                                  body_text="Hello {{ name }}", sender_name="UMS Bank", sender_contact="1588-0000")
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        await login(page, base, "marketer")
        await page.goto(base + "/compose")
        await page.fill("#to", "lee@example.com")
        await page.fill("#subject", "Hello {{ name }}")
        await page.click("#editor")
        await page.keyboard.type("Your card is ready, ")
        await page.click("[data-command=bold]")
        await page.keyboard.type("{{ name }}")
        await page.click("button[value=preview]")
        assert "Kim Minji" in await page.locator("#preview").inner_text()
        assert await page.locator("#preview b, #preview strong").count() == 1
        await shot(page, "compose")
        await page.click("#send")
        assert "Queued for lee@example.com" in await page.locator(".flash").inner_text()
        async with suite.ctx.db.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(deliveries.select())]
        assert [(r["recipient"], r["variables"]["subject"]) for r in rows] == [("lee@example.com", "Hello Kim Minji")]
        assert "<b>Kim Minji</b>" in rows[0]["variables"]["body_html"]

        await page.goto(base + "/campaigns")
        await page.fill("input[name=name]", "Autumn VIP")
        await page.select_option("select[name=template]", "email:autumn-offer")
        await page.select_option("select[name=kind]", "advertising")
        await page.select_option("select[name=books]", "VIP customers")
        await page.click("form[action='/campaigns'] button.primary")
        await page.wait_for_url("**/campaigns/*")
        await page.click("#campaign-schedule")
        await page.wait_for_load_state("networkidle")
        assert await page.locator("[data-state]").inner_text() == "scheduled"
        await page.wait_for_function("document.querySelector('[data-count=done]').textContent === '0'")
        await shot(page, "campaign")
    finally:
        await page.close()


async def fill_the_site(suite, user_ids: dict) -> dict:
    """Data for every main page: a service, CDR rows, contacts (one with lapsed
    consent), a campaign with finished deliveries, a mailbox with rules."""
    from datetime import timedelta

    from sqlalchemy import update

    from ums import campaigns as campaign_api
    from ums.db.models import cdr
    from ums.outbox import SendRequest, enqueue
    from ums.store import services as service_store

    now = suite.ctx.clock()
    ids = await add_mailbox(suite.ctx.db, user_ids["user"])
    async with suite.ctx.db.begin() as conn:
        await service_store.register(conn, "deposit-alert", "deposit", "transactional", 3,
                                     {"name": "deposit-alert", "event_type": "deposit",
                                      "channels": [{"channel": "email", "template": "deposit"}]}, now, "ops")
        await service_store.register(conn, "card-offer", "card", "advertising", 5, {"name": "card-offer"}, now, "ops")
        await service_store.set_state(conn, "card-offer", "stopped")
        book = await addressbooks.ensure_book(conn, "VIP customers")
        for number, (name, days_old) in enumerate([("Kim Minji", 30), ("Park Jisoo", 800), ("Lee Hana", 200)]):
            contact = await addressbooks.save_contact(conn, {
                "name": name, "email": f"c{number}@example.com", "fax": f"0255501{number:02d}", "grade": "VIP"}, now)
            await addressbooks.add_to_book(conn, book, contact)
            await addressbooks.record_consent(conn, contact, True, "branch", now - timedelta(days=days_old))
        await template_store.save(conn, "notice", "email", now, kind="transactional", subject="Notice",
                                  body_text="Hello {{ name }}")
        spec = campaign_api.from_dict({"name": "May notice", "kind": "transactional", "channel": "email",
                                       "template": "notice", "audience": {"books": ["VIP customers"]}})
        campaign_id = await campaign_api.create(conn, spec, now)
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        for index in range(24):
            delivery = await enqueue(conn, SendRequest("email", f"p{index}@example.com", template="notice",
                                                       campaign_id=campaign_id), now)
            state = "failed" if index % 7 == 3 else ("suppressed" if index % 11 == 5 else "sent")
            await conn.execute(update(deliveries).where(deliveries.c.id == delivery).values(
                state=state, finished_at=start + timedelta(minutes=8 * index)))
        for index, (medium, dst, disposition, pages, billsec, cost) in enumerate([
            ("email", "c0@example.com", "ANSWERED", None, 0, "2"), ("fax", "+8225550101", "ANSWERED", 3, 0, "90"),
            ("voice", "+821012345678", "ANSWERED", None, 42, "40"), ("voice", "+821099998888", "BUSY", None, 0, "0"),
        ]):
            at = now - timedelta(hours=index)
            await conn.execute(cdr.insert().values(
                attempt=1, final=True, dst=dst, start=at, end=at, duration=billsec, billsec=billsec,
                disposition=disposition, medium=medium, pages=pages, cost=cost, source="deposit-alert"))
    return {**ids, "campaign": campaign_id}


async def test_every_main_page_with_data_in_the_browser(tmp_path, sqlite_url, start_suite, browser, shot):
    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    user_ids = await add_users(suite.ctx.db)
    ids = await fill_the_site(suite, user_ids)
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        await login(page, base, "admin")
        for name, path, expected in [
            ("inbox", "/inbox", "Fax from +82 2 555 0100"),
            ("contacts", "/contacts", "Park Jisoo"),
            ("services", "/services", "deposit-alert"),
            ("service", "/services/deposit-alert", "Definition"),
            ("billing", "/billing", "+821099998888"),
            ("campaigns", "/campaigns", "May notice"),
        ]:
            await page.goto(base + path)
            assert expected in await page.locator("main").inner_text(), path
            await shot(page, name)
        await page.goto(base + f"/campaigns/{ids['campaign']}")
        assert await page.locator("#chart rect").count() >= 4
        await shot(page, "campaign-chart")

        # a lapsed consent is flagged in the contact view
        await page.goto(base + "/contacts")
        await page.click("text=Park Jisoo")
        assert "Reconfirmation needed" in await page.locator("#consent-state").inner_text()
        await shot(page, "contact")

        # a fax is answered by fax to the sender's number
        await page.goto(base + f"/inbox/{ids['fax']}")
        await page.click("text=Reply by fax")
        assert await page.locator("select[name=channel]").input_value() == "fax"
        assert await page.locator("input[name=to]").input_value() == "+8225550100"
        await shot(page, "fax-reply")
    finally:
        await page.close()


async def test_a_sieve_error_is_shown_in_place_and_the_cursor_put_there(tmp_path, sqlite_url, start_suite, browser,
                                                                         shot):
    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    user_ids = await add_users(suite.ctx.db)
    await add_mailbox(suite.ctx.db, user_ids["user"])
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        await login(page, base, "user")
        await page.goto(base + "/rules")
        script = 'require "fileinto";\nif header :contains "subject" "invoice" {\n  fileinto "Invoices"\n}\n'
        await page.fill("textarea[name=script]", script)
        await page.click("button.primary")
        await page.wait_for_load_state("networkidle")
        error = await page.locator("#sieve-error").inner_text()
        assert "Line 4, column 1" in error and "Nothing was saved" in error
        # the script is kept and the cursor sits on the offending "}"
        area = page.locator("textarea[name=script]")
        assert await area.input_value() == script
        offset = await area.evaluate("a => a.selectionStart")
        assert script[offset] == "}" and script[:offset].count("\n") == 3
        await shot(page, "rules-error")
        await page.fill("textarea[name=script]", script.replace('"Invoices"\n', '"Invoices";\n'))
        await page.click("button.primary")
        await page.wait_for_load_state("networkidle")
        assert "Rules saved" in await page.locator(".flash").inner_text()
        await shot(page, "rules")
    finally:
        await page.close()
