"""The mailbox half of WAS for daily work, in a real headless Chromium against
real servers (WAS, MAS taking mail over SMTP, PASS sending to an aiosmtpd sink):

1. an admin assigns support@ to a user on the Users page; that user sees only
   support@'s mail, pages through 1,000 messages to the oldest, and a search
   for a Korean word from one body finds it;
2. a reply from support@ reaches the sink From and Reply-To support@ with
   In-Reply-To and no list headers, and the Sent folder shows it sent;
3. a styled newsletter keeps its colours and its cid: image (nothing remote
   loads, its data: link is gone), faxes keep their aspect at both
   resolutions, and at 375 px the menu folds and tables scroll in place.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "was"))

from test_was_browser import Tracker, login  # noqa: E402
from was_site import add_users  # noqa: E402

from tests.conftest import make_config  # noqa: E402
from tests.helpers import eventually, split_address  # noqa: E402
from tests.integration.was import test_with_pass  # noqa: E402
from tests.integration.was.test_with_pass import Recorder  # noqa: E402

#: the aiosmtpd sink PASS relays to (a fixture)
smtp_sink = test_with_pass.smtp_sink

#: a word that is in one body only (and in no subject or sender)
KOREAN_WORD = "환불신청서"
TOTAL = 1000


def inbound(number: int, to: str, subject: str, text: str, message_id: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = f"Customer {number} <customer{number}@example.com>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or f"<m{number}.{to.split('@')[0]}@example.com>"
    message.set_content(text)
    return message.as_bytes()


async def deliver(mas_address: str, messages: list[tuple[str, bytes]], connections: int = 8) -> None:
    """Send ``(recipient, raw)`` pairs to MAS over SMTP, in order within each connection."""
    host, port = split_address(mas_address)

    async def one_connection(batch):
        async with aiosmtplib.SMTP(hostname=host, port=port, timeout=30, start_tls=False) as client:
            for recipient, raw in batch:
                await client.sendmail("sender@example.com", [recipient], raw)

    await asyncio.gather(*(one_connection(messages[i::connections]) for i in range(connections)))


async def assign_on_users_page(page, base: str, address: str, username: str) -> None:
    await page.goto(base + "/admin/users")
    await page.fill("#assign-mailbox input[name=address]", address)
    await page.select_option("#assign-mailbox select[name=username]", username)
    await page.click("#assign-mailbox button.primary")
    await page.wait_for_load_state("networkidle")
    assert f"{address} now belongs to {username}" in await page.locator(".flash").inner_text()


async def test_a_user_sees_only_their_mailbox_pages_to_the_oldest_and_finds_a_korean_word(
        tmp_path, sqlite_url, start_suite, browser, shot):
    suite = await start_suite(make_config(tmp_path, sqlite_url), ["was", "mas"])
    base = "http://" + suite.services["was"].address
    await add_users(suite.ctx.db)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        await login(page, base, "admin")
        await assign_on_users_page(page, base, "support@ums.local", "user")
        await assign_on_users_page(page, base, "sales@ums.local", "marketer")
        assert await page.locator("td.mailboxes[data-user=user]").inner_text() == "support@ums.local"
        await shot(page, "mailbox-users-page")

        # the oldest first, on its own, so it is the last of the list; then 999 more and 30 for sales@
        await deliver(suite.services["mas"].address, [("support@ums.local", inbound(
            1, "support@ums.local", "Ticket 0001: card fee",
            f"안녕하세요. 지난달 카드 연회비 {KOREAN_WORD}를 첨부합니다. 확인 부탁드립니다."))], connections=1)
        started = time.monotonic()
        await deliver(suite.services["mas"].address, [
            ("support@ums.local", inbound(n, "support@ums.local", f"Ticket {n:04d}", f"문의 {n}번: 잔액 확인 요청입니다."))
            for n in range(2, TOTAL + 1)
        ] + [("sales@ums.local", inbound(n, "sales@ums.local", f"Sales lead {n}", f"견적 {KOREAN_WORD} 요청 {n}"))
             for n in range(1, 31)])
        print(f"MAS took {TOTAL - 1 + 30} messages over SMTP in {time.monotonic() - started:.1f} s")

        # the admin sees both mailboxes, with a mailbox column and a filter
        await page.goto(base + "/inbox")
        assert "1–50 of 1,030" in await page.locator("#count").inner_text()
        assert await page.locator("td.mailbox", has_text="sales@ums.local").count() > 0
        await page.select_option("#mailbox-filter", "sales@ums.local")
        await page.click("form.search button.primary")
        assert "1–30 of 30" in await page.locator("#count").inner_text()
        await shot(page, "mailbox-admin-filter")
        await page.context.clear_cookies()

        await login(page, base, "user")
        await page.goto(base + "/inbox")
        assert await page.locator("#count").inner_text() == f"1–50 of {TOTAL:,}"
        assert await page.locator("table.messages tr").count() == 51
        await shot(page, "mailbox-inbox-first-page")
        timings, pages = [], 1
        while await page.locator("#older").count():
            started = time.monotonic()
            await page.click("#older")
            await page.wait_for_load_state("load")
            timings.append(time.monotonic() - started)
            pages += 1
            assert "Sales lead" not in await page.locator("table.messages").inner_text()
        assert pages == TOTAL // 50
        assert await page.locator("#count").inner_text() == f"951–1,000 of {TOTAL:,}"
        last_row = page.locator("table.messages tr").last
        assert "Ticket 0001: card fee" in await last_row.inner_text()
        print(f"{pages} pages, slowest {max(timings) * 1000:.0f} ms, mean {sum(timings) / len(timings) * 1000:.0f} ms")
        await shot(page, "mailbox-inbox-oldest-page")

        # a Korean word from one body: only support@'s message (sales@ has it too, and stays hidden)
        await page.fill("#search", KOREAN_WORD)
        started = time.monotonic()
        await page.click("form.search button.primary")
        await page.wait_for_load_state("load")
        print(f"search for {KOREAN_WORD} in {(time.monotonic() - started) * 1000:.0f} ms")
        assert await page.locator("#count").inner_text() == "1–1 of 1"
        assert await page.locator("table.messages tr").count() == 2
        assert "Ticket 0001: card fee" in await page.locator("table.messages").inner_text()
        await shot(page, "mailbox-korean-search")
        # a word inside a Hangul phrase (with its particle) is found too
        await page.fill("#search", "잔액")
        await page.click("form.search button.primary")
        assert await page.locator("#count").inner_text() == f"1–50 of {TOTAL - 1:,}"

        # another mailbox's message is not there for this user
        reply = await page.goto(base + "/inbox?mailbox=sales@ums.local")
        assert reply.status == 200 and await page.locator("#count").inner_text() == "0 messages"
    finally:
        await page.close()


async def test_a_reply_from_support_reaches_the_sink_from_support_and_the_sent_folder_shows_it_sent(
        tmp_path, sqlite_url, start_suite, browser, shot, smtp_sink: Recorder):
    config = make_config(tmp_path, sqlite_url, email__relay_port=str(smtp_sink.port))
    suite = await start_suite(config, ["was", "mas", "pass"])
    base = "http://" + suite.services["was"].address
    await add_users(suite.ctx.db)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        await login(page, base, "admin")
        await assign_on_users_page(page, base, "support@ums.local", "user")
        await page.context.clear_cookies()
        question = inbound(7, "support@ums.local", "Where is my card?", "I ordered a card two weeks ago.",
                           message_id="<question-7@customer.example>")
        await deliver(suite.services["mas"].address, [("support@ums.local", question)], connections=1)

        await login(page, base, "user")
        await page.goto(base + "/inbox")
        await page.click("text=Where is my card?")
        await page.click("text=Reply")
        assert "support@ums.local" in await page.locator("#from-line").inner_text()
        await page.fill("textarea[name=body]", "Your card was posted yesterday.")
        await shot(page, "mailbox-reply-form")
        await page.click("button.primary")
        await page.wait_for_load_state("load")
        assert "from support@ums.local" in await page.locator(".flash").inner_text()

        await eventually(lambda: len(smtp_sink.received) == 1, timeout=20)
        [(recipients, raw)] = smtp_sink.received
        sent = email.message_from_bytes(raw, policy=email.policy.default)
        assert recipients == ["customer7@example.com"]
        assert sent["From"].addresses[0].addr_spec == "support@ums.local"
        assert sent["Reply-To"].addresses[0].addr_spec == "support@ums.local"
        assert sent["In-Reply-To"] == "<question-7@customer.example>"
        assert "<question-7@customer.example>" in sent["References"]
        assert sent["List-Unsubscribe"] is None and sent["List-Unsubscribe-Post"] is None
        assert "posted yesterday" in sent.get_body(("plain",)).get_content()

        # the Sent folder: the reply, its state read from the delivery (the page polls it)
        await page.goto(base + "/inbox?folder=Sent")
        await page.wait_for_function(
            "document.querySelector('[data-sent]') && document.querySelector('[data-sent]').textContent === 'sent'")
        row = page.locator("table.messages tr").nth(1)
        assert "customer7@example.com" in await row.inner_text()
        await shot(page, "mailbox-sent-folder")
        # and the conversation holds question and reply
        await page.click("text=Re: Where is my card?")
        assert await page.locator("#conversation tr").count() == 2
        assert await page.locator("#delivery-state").inner_text() == "sent"
        await shot(page, "mailbox-conversation")
    finally:
        await page.close()


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


NEWSLETTER = """<html><head><style>body {{ background: url({remote}/style-bg.png) }}</style></head><body>
<table width="600" style="background-color:#0b5fff;border-collapse:collapse">
 <tr><td style="padding:24px;color:#ffffff;font-family:Arial,sans-serif;font-size:22px">
   <img src="cid:logo@bank.example" alt="Bank logo" width="120" height="40">
   <h1 style="color:#ffd400;margin:0;position:fixed;top:0">Autumn savings</h1></td></tr>
 <tr><td style="background:#fff7e0 url({remote}/bg.png);color:#333333;padding:16px">
   Open a savings account this month.
   <a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">see the terms</a>
   <img src="{remote}/open.gif" alt="tracker"></td></tr>
</table></body></html>"""


def newsletter(remote: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Bank News <news@bank.example>"
    message["To"] = "support@ums.local"
    message["Subject"] = "Autumn newsletter"
    message.set_content("Autumn savings: open a savings account this month.")
    message.add_alternative(NEWSLETTER.format(remote=remote), subtype="html")
    message.get_payload()[1].add_related(png(120, 40, (200, 20, 20)), maintype="image", subtype="png",
                                         cid="<logo@bank.example>")
    return message.as_bytes()


def fax_tiff(vertical_dpi: int) -> bytes:
    """One A4-wide fax page (1728 dots across) at 204 × ``vertical_dpi`` dpi."""
    from PIL import Image, ImageDraw

    lines = 1100 if vertical_dpi == 98 else 2200
    image = Image.new("1", (1728, lines), 1)
    ImageDraw.Draw(image).ellipse((64, 64, 1664, 64 + 1600 * vertical_dpi // 204), outline=0, width=6)
    out = io.BytesIO()
    image.save(out, "TIFF", compression="group4", dpi=(204, vertical_dpi))
    return out.getvalue()


def fax_mail(number: int, vertical_dpi: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"FAX=+8225550{number:03d}@fax.example"
    message["To"] = "support@ums.local"
    message["Subject"] = f"Fax at 204x{vertical_dpi}"
    message.set_content("A fax.")
    message.add_attachment(fax_tiff(vertical_dpi), maintype="image", subtype="tiff", filename="fax.tif")
    return message.as_bytes()


async def test_a_styled_newsletter_keeps_its_colours_and_cid_image_faxes_keep_their_aspect_and_phones_fit(
        tmp_path, sqlite_url, start_suite, browser, shot):
    suite = await start_suite(make_config(tmp_path, sqlite_url), ["was", "mas"])
    base = "http://" + suite.services["was"].address
    await add_users(suite.ctx.db)
    tracker = Tracker()
    remote = await tracker.start()
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), asyncio.ensure_future(dialog.dismiss())))
    try:
        await login(page, base, "admin")
        await assign_on_users_page(page, base, "support@ums.local", "user")
        await page.context.clear_cookies()
        await deliver(suite.services["mas"].address, [("support@ums.local", newsletter(remote)),
                                                       ("support@ums.local", fax_mail(1, 98)),
                                                       ("support@ums.local", fax_mail(2, 196))], connections=1)
        await login(page, base, "user")
        await page.goto(base + "/inbox")
        await page.click("text=Autumn newsletter")
        frame = page.frame_locator("#mail-body")
        await frame.locator("img[alt='Bank logo']").wait_for(state="attached")
        inner = page.frames[1]
        await inner.wait_for_function("document.querySelector(\"img[alt='Bank logo']\").complete")
        style = await inner.evaluate("""() => {
            const [headline, offer] = document.querySelectorAll('td');
            const of = (element, name) => getComputedStyle(element)[name];
            const link = [...document.querySelectorAll('a')].find(a => a.textContent.includes('see the terms'));
            return {headline: of(headline, 'color'), offer: of(offer, 'color'),
                    offerBackground: of(offer, 'backgroundColor'), offerImage: of(offer, 'backgroundImage'),
                    table: of(document.querySelector('table'), 'backgroundColor'),
                    h1: of(document.querySelector('h1'), 'color'), h1Position: of(document.querySelector('h1'), 'position'),
                    bodyImage: of(document.body, 'backgroundImage'),
                    logoWidth: document.querySelector("img[alt='Bank logo']").naturalWidth,
                    dataLink: link.getAttribute('href')}
        }""")
        assert style["headline"] == "rgb(255, 255, 255)"
        assert style["table"] == "rgb(11, 95, 255)"
        assert style["h1"] == "rgb(255, 212, 0)"
        assert style["offer"] == "rgb(51, 51, 51)"
        # the background with a remote url() is dropped whole; nothing is positioned over the page
        assert style["offerImage"] == "none" and style["bodyImage"] == "none"
        assert style["h1Position"] == "static"
        assert style["logoWidth"] == 120  # the cid: image, shown from the stored part
        assert style["dataLink"] is None  # the data: link has no href left
        assert "1 remote image not loaded" in await page.locator("main").inner_text()
        attachments = page.locator("main h2", has_text="Attachments")
        assert await attachments.count() == 0  # the inline logo is not listed as a "part-N" attachment
        await page.wait_for_timeout(300)
        assert tracker.hits == 0 and dialogs == []
        await shot(page, "mailbox-newsletter")

        # faxes: 204×98 and 204×196 dpi pages both drawn with square pixels (an A4 page is ~1.41 high)
        for subject in ("Fax at 204x98", "Fax at 204x196"):
            await page.goto(base + "/inbox")
            await page.click(f"text={subject}")
            pages = page.locator("img.fax-page")
            await eventually(lambda: pages.evaluate_all("all => all.length > 0 && all.every(i => i.complete "
                                                        "&& i.naturalWidth > 0)"), timeout=15)
            width, height = await page.locator("img.fax-page").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
            shown = await page.locator("img.fax-page").first.bounding_box()
            # 1,100 lines at 98 dpi or 2,200 at 196 dpi: 11.2 inches, 2,290 square pixels at 204 dpi
            assert (width, height) == (1728, 2290), subject
            assert abs(shown["height"] / shown["width"] - height / width) < 0.01, subject
            await shot(page, "mailbox-" + subject.lower().replace(" ", "-"))

        # a phone: the menu folds behind a button, and the inbox table scrolls in its own box
        phone = await browser.new_page(viewport={"width": 375, "height": 740})
        await phone.context.add_cookies(await page.context.cookies())
        await phone.goto(base + "/inbox")
        assert not await phone.locator("#menu").is_visible()
        header = await phone.locator("header.top").bounding_box()
        assert header["height"] < 70
        assert await phone.evaluate("document.documentElement.scrollWidth") <= 375
        scroller = phone.locator(".scroll").first
        assert await scroller.evaluate("e => e.scrollWidth > e.clientWidth")  # wide, and scrolls in place
        await shot(phone, "mailbox-phone-inbox")
        await phone.click("label.menu-button")
        assert await phone.locator("#menu").is_visible()
        await shot(phone, "mailbox-phone-menu")
        await phone.goto(base + "/contacts")
        assert await phone.evaluate("document.documentElement.scrollWidth") <= 375
        await phone.close()
    finally:
        tracker.close()
        await page.close()
