"""The preference centre in a real headless Chromium (issue #18): PASS sends
a real email through an SMTP sink; the customer opens its List-Unsubscribe
link, picks fax as preferred channel, turns email and the 카드 topic off and
saves. The page shows what was saved (with the Seoul time), the store API
answers it, and the consent records are on the customer's timeline."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "was"))

from aiosmtpd.smtp import SMTP as SMTPServer  # noqa: E402

from tests.conftest import make_config  # noqa: E402
from tests.helpers import eventually  # noqa: E402
from ums import preferences  # noqa: E402
from ums.clock import Clock  # noqa: E402
from ums.outbox import SendRequest, enqueue  # noqa: E402
from ums.store import contacts, timeline  # noqa: E402
from ums.store import preferences as preference_store  # noqa: E402
from ums.store import templates as template_store  # noqa: E402

KST = timezone(timedelta(hours=9))
AT = datetime(2026, 12, 2, 14, 30, tzinfo=KST)


class Sink:
    def __init__(self):
        self.received: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope.original_content or envelope.content)
        return "250 2.0.0 queued"


async def test_a_customer_sets_preferences_from_the_link_of_a_real_email(tmp_path, sqlite_url, start_suite,
                                                                         browser, shot):
    sink = Sink()
    server = await asyncio.get_running_loop().create_server(lambda: SMTPServer(sink, hostname="sink.test"),
                                                            "127.0.0.1", 0)
    try:
        config = make_config(tmp_path, sqlite_url, email__relay_port=str(server.sockets[0].getsockname()[1]))
        suite = await start_suite(config, ["was", "pass"], clock=Clock(AT))
        base = "http://" + suite.services["was"].address
        async with suite.ctx.db.begin() as conn:
            contact_id = await contacts.create(conn, customer_id="C900", name="홍길동", email="hong@example.com",
                                               fax="02-555-0199", phone="010-9999-0000")
            await template_store.save(conn, "deposit", "email", suite.ctx.clock(), kind="transactional",
                                      subject="입금 안내", body_text="{{ name }}님, 입금되었습니다")
            await enqueue(conn, SendRequest("email", "hong@example.com", template="deposit", contact_id=contact_id),
                          suite.ctx.clock())
        await eventually(lambda: sink.received, timeout=20)
        header = message_from_bytes(sink.received[0])["List-Unsubscribe"]
        token = re.search(r"/unsubscribe/([0-9a-f]+)>", header).group(1)

        page = await browser.new_page(viewport={"width": 1000, "height": 1100})
        await page.goto(f"{base}/unsubscribe/{token}")
        assert await page.locator("h1").inner_text() == "수신 설정 · Your preferences"
        assert await page.locator("input[name=channel][value=email]").is_checked()
        async with suite.ctx.db.connect() as conn:
            assert await preference_store.consent_records(conn, contact_id) == []  # the GET changed nothing
        await page.check("input[name=preferred][value=fax]")
        await page.uncheck("input[name=channel][value=email]")
        await page.uncheck("input[name=topic][value=카드]")
        await page.click("#save-preferences")
        await page.wait_for_load_state("networkidle")
        await shot(page, "preferences-saved")

        saved = await page.locator("#saved").inner_text()
        assert "email off" in saved and "topic 카드 off" in saved and "preferred fax" in saved
        assert not await page.locator("input[name=channel][value=email]").is_checked()
        assert await page.locator("input[name=channel][value=fax]").is_checked()
        assert not await page.locator("input[name=topic][value=카드]").is_checked()
        assert await page.locator("input[name=topic][value=대출]").is_checked()
        assert await page.locator("input[name=preferred][value=fax]").is_checked()
        assert "2026-12-02 14:30 KST" in await page.locator("#updated-at").inner_text()
        await page.reload()
        assert await page.locator("input[name=preferred][value=fax]").is_checked()
        assert not await page.locator("input[name=channel][value=email]").is_checked()

        async with suite.ctx.db.connect() as conn:
            assert await preferences.preferred_channel(conn, contact_id) == "fax"
            assert not await preferences.allows(conn, contact_id, "email", None, advertising=False)
            assert not await preferences.allows(conn, contact_id, "fax", "카드", advertising=True)
            assert await preferences.allows(conn, contact_id, "fax", "대출", advertising=True)
            view = await timeline.for_customer(conn, "C900")
        changes = [e for e in view["entries"] if e["kind"] == "consent"]
        assert sorted((e["purpose"], e["channel"], e["granted"]) for e in changes) == [
            ("channel", "email", False), ("preferred", "fax", True), ("topic:카드", "any", False)]
        assert {e["source"] for e in changes} == {"preference-centre"}
        assert {e["at"].astimezone(KST).strftime("%Y-%m-%d %H:%M") for e in changes} == {"2026-12-02 14:30"}

        # a POST from elsewhere (no form token) is refused and changes nothing
        forged = await page.request.post(f"{base}/unsubscribe/{token}",
                                         form={"action": "save", "channel": "email", "preferred": ""})
        assert forged.status == 403
        async with suite.ctx.db.connect() as conn:
            assert await preferences.preferred_channel(conn, contact_id) == "fax"
    finally:
        server.close()
