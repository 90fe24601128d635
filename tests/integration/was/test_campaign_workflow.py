"""The campaign workflow end to end, with WAS and PASS running and a real SMTP
sink on loopback, on SQLite and PostgreSQL:

* the preview (core, WAS page, ``ums campaign preview``) is the message the
  sink receives, byte for byte in every body part — label, sender block,
  무료수신거부 footer; a test send arrives, marked, and counts nowhere;
* ``campaign check`` reports unknown books, fields nobody has and a past
  start, and scheduling is refused until they are fixed or overridden;
* with tracking on, the pixel and a link of a delivered message count once
  each however often they are fetched — on the stats page and in
  ``ums campaign stats --json`` — and a tampered redirect is a 404; a bounce
  (a DSN to MAS) and a one-click refusal count too, there and on the
  operator dashboard;
* clone and delete from the command line.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import json
import re
from datetime import timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from was_site import add_users, api_key

from tests.acceptance.cli import ums_off_loop as ums
from tests.integration.mas.conftest import send_to_mas
from tests.unit.mas import mas_samples as samples
from tests.conftest import make_config
from tests.helpers import eventually
from ums import campaigns as campaign_api
from ums.db.models import campaigns, deliveries
from ums.store import addressbooks
from ums.store import templates as template_store

SEOUL = ZoneInfo("Asia/Seoul")
HTML = '<p>안녕하세요 {{ name }}님, <a href="https://bank.example/offer?a=1&amp;b=2">혜택 보기</a></p>'
TEXT = "안녕하세요 {{ name }}님. 혜택: https://bank.example/offer?a=1&b=2"


class Sink:
    def __init__(self):
        self.received: list[tuple[str, bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            self.received.append((rcpt, envelope.original_content or envelope.content))
        return "250 2.0.0 queued"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(data, policy=email.policy.default)
                for rcpt, data in self.received if rcpt == address]


@pytest.fixture
async def sink():
    recorder = Sink()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTPServer(recorder, hostname="sink.test"), "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    yield recorder
    server.close()


@pytest.fixture
async def site(tmp_path, database_url, start_suite, sink):
    from was_site import Site

    config = make_config(tmp_path, database_url, email__relay_port=str(sink.port))
    suite = await start_suite(config, ["was", "pass", "mas"])
    await add_users(suite.ctx.db)
    home = tmp_path / "cli"
    home.mkdir()
    (home / "ums.cfg").write_text(f"[database]\nurl = {database_url}\n[email]\nrelay_port = {sink.port}\n")
    site = Site(suite, "http://" + suite.services["was"].address)
    site.home = home
    return site


async def seed(ctx, people=("kim@example.com", "lee@example.com"), tester="tester@bank.example") -> None:
    now = ctx.clock()
    async with ctx.db.begin() as conn:
        book = await addressbooks.ensure_book(conn, "Offers")
        for number, address in enumerate(people):
            contact = await addressbooks.save_contact(conn, {"name": f"고객{number}", "email": address,
                                                             "customer_id": f"C{number}"}, now)
            await addressbooks.add_to_book(conn, book, contact)
            await addressbooks.record_consent(conn, contact, True, "web form", now - timedelta(days=1), night_time=True)
        staff = await addressbooks.save_contact(conn, {"name": "테스터", "email": tester}, now)
        await addressbooks.record_consent(conn, staff, True, "staff", now - timedelta(days=1), night_time=True)
        await template_store.save(conn, "offer", "email", now, kind="advertising", subject="{{ name }}님 혜택",
                                  body_text=TEXT, body_html=HTML, sender_name="UMS은행", sender_contact="1588-0000")


async def make_campaign(ctx, name: str, tracking: bool = False, books=("Offers",)) -> int:
    spec = campaign_api.from_dict({"name": name, "kind": "advertising", "template": "offer",
                                   "audience": {"books": list(books)}, "tracking": tracking})
    async with ctx.db.begin() as conn:
        return await campaign_api.create(conn, spec, ctx.clock())


def parts(message: email.message.EmailMessage) -> tuple[str, str, str]:
    """Subject, text and HTML exactly as the bodies decode (no normalising)."""
    text = message.get_body(("plain",)).get_payload(decode=True).decode("utf-8")
    body = message.get_body(("html",)).get_payload(decode=True).decode("utf-8")
    return str(message["subject"]), text, body


async def test_preview_is_what_the_sink_receives_and_a_test_send_counts_nowhere(site, sink):
    ctx = site.ctx
    await seed(ctx)
    campaign_id = await make_campaign(ctx, "december")
    async with ctx.db.begin() as conn:
        test_id = await campaign_api.test_send(conn, campaign_id, "tester@bank.example", ctx.clock())
    await eventually(lambda: sink.to("tester@bank.example"), timeout=20)
    [received] = sink.to("tester@bank.example")
    async with ctx.db.connect() as conn:
        preview = await campaign_api.preview(conn, ctx.config, campaign_id, delivery_id=test_id)
        marked = (await conn.execute(deliveries.select().where(deliveries.c.id == test_id))).first()
    subject, text, body = parts(received)
    assert (subject, text, body) == (preview.subject, preview.text, preview.html)
    assert subject.startswith("(광고) ") and "발신: UMS은행 (1588-0000)" in text and "무료수신거부" in body
    assert marked.service_name == campaign_api.TEST_SENDER and marked.campaign_id is None

    # the WAS page shows the same text, character for character
    marketer = await site.logged_in("marketer")
    page = await marketer.get(f"/campaigns/{campaign_id}/preview?delivery={test_id}")
    assert page.status == 200
    shown = html.unescape(re.search(r'<pre id="preview-text">(.*?)</pre>', page.text, re.S).group(1))
    assert shown == text
    frame = await marketer.get(f"/campaigns/{campaign_id}/preview.html?delivery={test_id}")
    assert frame.body.decode("utf-8") == body and "sandbox" in frame.headers["Content-Security-Policy"]

    # the test counts in none of the campaign's figures
    async with ctx.db.connect() as conn:
        assert (await campaign_api.stats(conn, campaign_id))["sent"] == 0

    # the campaign itself: each delivered message is its preview
    async with ctx.db.begin() as conn:
        await campaign_api.schedule_checked(conn, campaign_id, None, ctx.clock(), start_now=True)
    await eventually(lambda: len(sink.received) == 3, timeout=20)
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(deliveries.select().where(deliveries.c.campaign_id == campaign_id))).all()
        for row in rows:
            [message] = sink.to(row.recipient)
            expected = await campaign_api.preview(conn, ctx.config, campaign_id, delivery_id=row.id)
            assert parts(message) == (expected.subject, expected.text, expected.html)

    async def counted():
        async with ctx.db.connect() as conn:
            return (await campaign_api.stats(conn, campaign_id))["sent"] == 2

    await eventually(counted, timeout=10)


async def test_check_warns_and_blocks_scheduling_until_fixed_or_overridden(site):
    ctx = site.ctx
    await seed(ctx)
    now = ctx.clock()
    async with ctx.db.begin() as conn:
        await template_store.save(conn, "offer", "email", now, kind="advertising", subject="혜택",
                                  body_text="{{ branch }} 지점 {{ name }}", sender_name="UMS은행",
                                  sender_contact="1588-0000")
        spec = campaign_api.from_dict({"name": "broken", "kind": "advertising", "template": "offer",
                                       "audience": {"books": ["Offers", "No such book"]},
                                       "schedule": {"at": (now + timedelta(hours=2)).isoformat()}})
        campaign_id = await campaign_api.create(conn, spec, now)
        # its own time passes while it is still a draft
        await conn.execute(campaigns.update().values(schedule_at=now - timedelta(hours=1)))

    checked = await ums(site.home, "campaign", "check", "broken", "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    codes = {problem["code"] for problem in report["problems"] if problem["blocking"]}
    assert codes == {"unknown_book", "missing_field", "past_start"}
    assert report["unknown_books"] == ["No such book"] and report["missing_fields"] == {"branch": 2}
    assert report["audience"] == 2 and report["consent"]["current"] == 2 and not report["ready"]
    lines = await ums(site.home, "campaign", "check", "broken")
    assert "BLOCKING: no address book named 'No such book'" in lines.stdout
    assert "{{ branch }}" in lines.stdout and "in the past" in lines.stdout

    refused = await ums(site.home, "campaign", "schedule", "broken")
    assert refused.returncode != 0 and "in the past" in refused.stderr and "Traceback" not in refused.stderr
    later = (now + timedelta(days=1)).isoformat()
    refused = await ums(site.home, "campaign", "schedule", "broken", "--at", later)
    assert refused.returncode != 0 and "not ready to schedule" in refused.stderr
    assert "No such book" in refused.stderr and "branch" in refused.stderr
    async with ctx.db.connect() as conn:
        assert (await campaign_api.find(conn, campaign_id))["state"] == "draft"

    # through the API: the same check, a 409 naming every blocking problem, unless forced
    key = await api_key(ctx, scopes=["campaigns"])
    api = site.client()
    path = f"/api/v1/campaigns/{campaign_id}/schedule"
    as_json = {"x-api-key": key, "content-type": "application/json"}
    blocked = await api.request("POST", path, json.dumps({"at": later}).encode(), as_json)
    reason = json.loads(blocked.body)["reason"]
    assert blocked.status == 409 and "not ready to schedule" in reason
    assert "No such book" in reason and "branch" in reason
    async with ctx.db.connect() as conn:
        assert (await campaign_api.find(conn, campaign_id))["state"] == "draft"

    # in WAS: the same panel, and the button refuses without the override
    marketer = await site.logged_in("marketer")
    page = await marketer.get(f"/campaigns/{campaign_id}")
    assert "No such book" in page.text and 'id="campaign-force"' in page.text
    blocked = await marketer.post_form(f"/campaigns/{campaign_id}/schedule", {"at": later[:16]},
                                       page=f"/campaigns/{campaign_id}")
    assert blocked.status == 400 and "not ready to schedule" in html.unescape(blocked.text)
    forced = await marketer.post_form(f"/campaigns/{campaign_id}/schedule", {"at": later[:16], "force": "1"},
                                      page=f"/campaigns/{campaign_id}")
    assert forced.status == 303
    async with ctx.db.connect() as conn:
        assert (await campaign_api.find(conn, campaign_id))["state"] == "scheduled"
    forced = await api.request("POST", path, json.dumps({"at": later, "force": True}).encode(), as_json)
    assert forced.status == 200 and json.loads(forced.body)["state"] == "scheduled"


async def _state(ctx, delivery_id: int) -> bool:
    """Whether PASS has recorded the delivery as sent (its Message-ID is then final)."""
    async with ctx.db.connect() as conn:
        row = (await conn.execute(deliveries.select().where(deliveries.c.id == delivery_id))).first()
    return row.state == "sent"


def _public(site, url: str) -> str:
    """A link of a message (under ``[was] public_url``) as a path on the running WAS."""
    parts_ = urlsplit(html.unescape(url))
    return parts_.path + (f"?{parts_.query}" if parts_.query else "")


async def test_tracking_counts_a_pixel_and_a_click_once_and_refuses_tampering(site, sink):
    ctx = site.ctx
    await seed(ctx, people=("kim@example.com", "lee@example.com"))
    campaign_id = await make_campaign(ctx, "tracked", tracking=True)
    async with ctx.db.begin() as conn:
        await campaign_api.schedule_checked(conn, campaign_id, None, ctx.clock(), start_now=True)
    await eventually(lambda: sink.to("kim@example.com") and sink.to("lee@example.com"), timeout=20)
    [message] = sink.to("kim@example.com")
    _, text, body = parts(message)
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', body).group(1)
    link = re.search(r'<a href="([^"]+/t/c/[^"]+)"', body).group(1)
    assert "/unsubscribe/" in text and "/t/c/" in text  # the refusal link stays direct, the offer is tracked
    assert not re.search(r'/t/c/[^\s"]*unsubscribe', body)

    client = site.client()
    for _ in range(3):
        got = await client.get(_public(site, pixel))
        assert got.status == 200 and got.headers["Content-Type"] == "image/gif"
        followed = await client.get(_public(site, link))
        assert followed.status == 302 and followed.headers["Location"] == "https://bank.example/offer?a=1&b=2"

    tampered = _public(site, link).replace("offer", "evil", 1)
    assert (await client.get(tampered)).status == 404
    elsewhere = re.sub(r"u=[^&]+", "u=https%3A%2F%2Fevil.example%2F", _public(site, link))
    refused = await client.get(elsewhere)
    assert refused.status == 404 and "Location" not in refused.headers
    forged = re.sub(r"/t/c/(\d+)/(\d+)/[0-9a-f]+", r"/t/c/\1/\2/" + "0" * 32, _public(site, link))
    assert (await client.get(forged)).status == 404
    other = re.sub(r"/t/c/(\d+)/", lambda m: f"/t/c/{int(m.group(1)) + 1}/", _public(site, link))
    assert (await client.get(other)).status == 404

    # lee's mailbox does not exist: the receiving MTA's bounce reaches MAS at the return path
    async with ctx.db.connect() as conn:
        to_lee = (await conn.execute(deliveries.select().where(deliveries.c.recipient == "lee@example.com"))).first()
    await eventually(lambda: _state(ctx, to_lee.id), timeout=10)
    bounce = samples.dsn("lee@example.com", sink.to("lee@example.com")[0]["Message-ID"])
    await send_to_mas(site.suite, bounce, "", [f"bounce+{to_lee.token}@ums.local"])

    stats = json.loads((await ums(site.home, "campaign", "stats", "tracked", "--json")).stdout)
    assert (stats["sent"], stats["delivered"], stats["bounced"], stats["opened"], stats["clicked"]) == (2, 1, 1, 1, 1)
    assert stats["channels"]["email"]["bounced"] == 1 and stats["cost"] != "0"
    marketer = await site.logged_in("marketer")
    page = await marketer.get(f"/campaigns/{campaign_id}")
    assert re.search(r'data-stat="opened">1<', page.text) and re.search(r'data-stat="clicked">1<', page.text)
    assert 'id="chart-metrics"' in page.text

    # the recipient refuses with the one-click link: a refusal of this campaign, on its stats and the dashboard
    token = re.search(r"/unsubscribe/([0-9a-f]+)", text).group(1)
    assert (await client.post(f"/unsubscribe/{token}", {"List-Unsubscribe": "One-Click"})).status == 200
    assert json.loads((await ums(site.home, "campaign", "stats", "tracked", "--json")).stdout)["refused"] == 1
    operator = await site.logged_in("operator")
    board = await operator.get("/dashboard")
    assert re.search(r'data-rate="refusal_rate">50.0 % \(1 refused\)', board.text), board.text
    assert re.search(r'data-rate="bounce_rate">50.0 % \(1 bounced\)', board.text)
    assert re.search(r'data-rate="sent">2<', board.text) and 'id="chart-rate"' in board.text

    timeline = json.loads((await ums(site.home, "customer", "show", "C0", "--json")).stdout)
    kinds = [entry["kind"] for entry in timeline["entries"]]
    assert kinds.count("open") == 1 and kinds.count("click") == 1
    assert any(entry.get("url") == "https://bank.example/offer?a=1&b=2" for entry in timeline["entries"])


async def test_clone_and_delete_from_the_command_line(site):
    ctx = site.ctx
    await seed(ctx)
    await make_campaign(ctx, "spring", tracking=True)
    cloned = await ums(site.home, "campaign", "clone", "spring")
    assert cloned.returncode == 0 and "'spring (copy)'" in cloned.stdout
    again = await ums(site.home, "campaign", "clone", "spring", "--name", "summer")
    assert again.returncode == 0
    listed = {row["name"]: row for row in json.loads((await ums(site.home, "campaign", "list", "--json")).stdout)}
    assert set(listed) == {"spring", "spring (copy)", "summer"}
    assert listed["summer"]["state"] == "draft" and listed["summer"]["template_name"] == "offer"
    assert listed["summer"]["tracking"] is True
    gone = await ums(site.home, "campaign", "delete", "spring (copy)", "--yes")
    assert gone.returncode == 0
    unknown = await ums(site.home, "campaign", "delete", "nope", "--yes")
    assert unknown.returncode != 0 and "No campaign 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    names = [row["name"] for row in json.loads((await ums(site.home, "campaign", "list", "--json")).stdout)]
    assert sorted(names) == ["spring", "summer"]

    # notices are never tracked
    async with ctx.db.begin() as conn:
        await campaign_api.create(conn, campaign_api.from_dict(
            {"name": "notice", "kind": "transactional", "template": "offer", "audience": {"books": ["Offers"]}}),
            ctx.clock())
    refused = await ums(site.home, "campaign", "track", "notice", "on")
    assert refused.returncode == 1 and "transactional" in refused.stderr and len(refused.stderr.splitlines()) == 1


async def test_advertising_made_in_was_needs_its_sender_and_the_footer_carries_it(site):
    ctx = site.ctx
    await seed(ctx)
    async with ctx.db.begin() as conn:
        await template_store.save(conn, "bare", "email", ctx.clock(), kind="advertising", subject="혜택",
                                  body_text="안녕하세요 {{ name }}님")
    marketer = await site.logged_in("marketer")
    fields = {"name": "bare-offer", "kind": "advertising", "template": "email:bare", "books": "Offers"}
    refused = await marketer.post_form("/campaigns", fields)
    assert refused.status == 400
    assert "must carry the sender name and sender contact" in html.unescape(refused.text)
    assert 'value="bare-offer"' in refused.text           # what was typed is kept
    made = await marketer.post_form("/campaigns", {**fields, "sender_name": "UMS은행", "sender_contact": "1588-0000"})
    assert made.status == 303
    async with ctx.db.connect() as conn:
        shown = await campaign_api.preview(conn, ctx.config, "bare-offer")
    assert shown.subject == "(광고) 혜택" and "발신: UMS은행 (1588-0000)" in shown.text
    assert "무료수신거부: http://127.0.0.1:8080/unsubscribe/PREVIEW" in shown.text


async def test_check_says_who_waits_for_the_night_rule_in_their_own_zone_and_until_when(site):
    ctx = site.ctx
    now = ctx.clock()
    async with ctx.db.begin() as conn:
        book = await addressbooks.ensure_book(conn, "Night")
        people = [("day@example.com", "Asia/Seoul", True, 0), ("sleep@example.com", "Asia/Seoul", False, 0),
                  ("ny@example.com", "America/New_York", False, 0), ("old@example.com", "Asia/Seoul", True, 740),
                  ("soon@example.com", "Asia/Seoul", True, 715), ("never@example.com", "Asia/Seoul", None, 0)]
        for address, tz, night, age in people:
            contact = await addressbooks.save_contact(conn, {"name": address, "email": address, "timezone": tz}, now)
            await addressbooks.add_to_book(conn, book, contact)
            if night is not None:
                await addressbooks.record_consent(conn, contact, True, "web form", now - timedelta(days=age),
                                                  night_time=night)
        await template_store.save(conn, "offer", "email", now, kind="advertising", subject="혜택", body_text="안내",
                                  sender_name="UMS은행", sender_contact="1588-0000")
        await campaign_api.create(conn, campaign_api.from_dict(
            {"name": "late", "kind": "advertising", "template": "offer", "audience": {"books": ["Night"]}}), now)
    # 23:00 in Seoul tomorrow is 09:00 in New York: only the Seoul sleeper without night consent waits
    tomorrow = (now + timedelta(days=1)).astimezone(SEOUL).date()
    at = f"{tomorrow.isoformat()}T23:00+09:00"
    report = json.loads((await ums(site.home, "campaign", "check", "late", "--at", at, "--json")).stdout)
    assert report["consent"] == {"current": 3, "night": 2, "due_soon": 1, "expired": 1, "withdrawn": 0, "none": 1}
    day_after = (tomorrow + timedelta(days=1)).isoformat()
    assert report["waiting_for_night_rule"] == [{"count": 1, "until": f"{day_after} 08:00 KST"}]
    assert report["ready"] is True
    lines = (await ums(site.home, "campaign", "check", "late", "--at", at)).stdout
    assert f"night rule: 1 will wait until {day_after} 08:00 KST" in lines
    assert "1 older than two years (reconfirmation due)" in lines
