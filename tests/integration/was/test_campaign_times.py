"""Campaign times over real HTTP (issue "Time is right everywhere", WAS and API):
times are read in the site's zone unless they carry an offset, a past start
is a 400 with its reason, pausing and resuming a campaign due in two days
leaves it scheduled for its time while PASS runs, and at 03:30 in Seoul the
campaign page and the API say the deliveries wait for the night-time rule
until 08:00 KST, with figures that add up to the total."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from was_site import Site, add_users

from tests.conftest import make_config
from tests.helpers import eventually
from tests.integration.pass_.pass_support import Sink, SinkHandler, add_template, pass_config, seed_audience, states
from ums import campaigns as campaign_api
from ums.clock import Clock
from ums.db.models import deliveries
from ums.store import addressbooks, apikeys
from ums.store import templates as template_store

UTC = timezone.utc
SEOUL = ZoneInfo("Asia/Seoul")
TEMPLATE = {"name": "offer", "subject": "Offer", "body_text": "Hello {{ name }}", "body_html": "<p>Hello</p>",
            "sender_name": "UMS Bank", "sender_contact": "1588-0000"}
XML_CAMPAIGN = """<?xml version="1.0" encoding="UTF-8"?>
<campaign name="{name}" kind="transactional" channel="email">
  <template name="offer"/>
  <audience><book>Everyone</book></audience>
  <schedule at="{at}"/>
</campaign>"""


async def api_headers(site_or_suite) -> dict:
    async with site_or_suite.ctx.db.begin() as conn:
        _, key = await apikeys.create(conn, "account", site_or_suite.ctx.clock(),
                                         scopes=["send", "contacts", "campaigns", "mailbox"])
    return {"content-type": "application/json", "x-api-key": key}


async def post_json(client, path: str, payload: dict, headers: dict):
    return await client.request("POST", path, json.dumps(payload).encode(), headers)


def campaign_json(name: str, at: str | None = None, book: str = "Everyone", kind: str = "transactional") -> dict:
    spec = {"name": name, "kind": kind, "channel": "email", "template": TEMPLATE, "audience": {"books": [book]}}
    if at is not None:
        spec["schedule"] = {"at": at}
    return spec


async def stored(ctx, campaign: int | str) -> dict:
    async with ctx.db.connect() as conn:
        return await campaign_api.find(conn, campaign)


async def delivery_count(ctx, campaign_id: int) -> int:
    async with ctx.db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(deliveries)
                                 .where(deliveries.c.campaign_id == campaign_id))


def progress_card(html: str) -> str:
    return html.split('id="progress"')[1].split("</div>\n    <div")[0]


# --- (a) times in API requests ----------------------------------------------------------------

async def test_api_campaign_times_honour_offsets_and_read_naive_ones_in_seoul(site):
    headers = await api_headers(site)
    client = site.client()
    async with site.ctx.db.begin() as conn:
        await addressbooks.ensure_book(conn, "Everyone")
    expected = {
        "with-offset": ("2030-05-01T09:00+09:00", datetime(2030, 5, 1, 0, 0, tzinfo=UTC)),
        "in-utc": ("2030-05-01T09:00Z", datetime(2030, 5, 1, 9, 0, tzinfo=UTC)),
        "no-offset": ("2030-05-01T09:00", datetime(2030, 5, 1, 0, 0, tzinfo=UTC)),   # 09:00 in Seoul
    }
    for name, (text, instant) in expected.items():
        made = await post_json(client, "/api/v1/campaigns", campaign_json(name, text), headers)
        assert made.status == 201, made.text
        campaign_id = json.loads(made.body)["id"]
        assert (await stored(site.ctx, campaign_id))["schedule_at"] == instant, name
        view = json.loads((await client.get(f"/api/v1/campaigns/{campaign_id}", **headers)).body)
        assert view["schedule_at"] == instant.isoformat() and view["timezone"] == "Asia/Seoul"

    xml = XML_CAMPAIGN.format(name="xml-no-offset", at="2030-05-01T09:30:00").encode()
    made = await client.request("POST", "/api/v1/campaigns", xml, {**headers, "content-type": "application/xml"})
    assert made.status == 201, made.text
    assert (await stored(site.ctx, "xml-no-offset"))["schedule_at"] == datetime(2030, 5, 1, 0, 30, tzinfo=UTC)

    # a due_at without an offset is Seoul time too (it used to be taken as UTC)
    send = {"channel": "email", "recipient": "lee@example.com", "subject": "Hi", "body": "x",
            "due_at": "2030-05-01T09:00"}
    queued = await post_json(client, "/api/v1/send", send, headers)
    assert queued.status == 202, queued.text
    async with site.ctx.db.connect() as conn:
        due_at = await conn.scalar(select(deliveries.c.due_at).where(deliveries.c.recipient == "lee@example.com"))
    assert due_at == datetime(2030, 5, 1, 0, 0, tzinfo=UTC)


async def test_api_refuses_a_past_or_bad_start_with_a_reason(site):
    headers = await api_headers(site)
    client = site.client()
    async with site.ctx.db.begin() as conn:
        await addressbooks.ensure_book(conn, "Everyone")

    past = await post_json(client, "/api/v1/campaigns", campaign_json("too-late", "2020-01-01T09:00"), headers)
    assert past.status == 400, past.text
    reason = json.loads(past.body)["reason"]
    assert "'too-late'" in reason and "in the past" in reason and "2020-01-01 09:00 KST" in reason
    bad = await post_json(client, "/api/v1/campaigns", campaign_json("gibberish", "next tuesday"), headers)
    assert bad.status == 400 and "Bad time 'next tuesday'" in json.loads(bad.body)["reason"]
    bad_due = await post_json(client, "/api/v1/send", {"channel": "email", "recipient": "lee@example.com",
                                                      "subject": "Hi", "body": "x", "due_at": "soon"}, headers)
    assert bad_due.status == 400 and "Bad time 'soon'" in json.loads(bad_due.body)["reason"]
    listed = json.loads((await client.get("/api/v1/campaigns", **headers)).body)["campaign"]
    assert listed == []

    # scheduling: a past "at" is refused, "now" starts it at once
    made = await post_json(client, "/api/v1/campaigns", campaign_json("draft"), headers)
    campaign_id = json.loads(made.body)["id"]
    refused = await post_json(client, f"/api/v1/campaigns/{campaign_id}/schedule",
                              {"at": "2020-01-01T09:00+09:00"}, headers)
    assert refused.status == 400 and "in the past" in json.loads(refused.body)["reason"]
    assert (await stored(site.ctx, campaign_id))["state"] == "draft"
    now = site.ctx.clock()
    started = await post_json(client, f"/api/v1/campaigns/{campaign_id}/schedule", {"now": True}, headers)
    assert started.status == 200, started.text
    answer = json.loads(started.body)
    assert answer["state"] == "scheduled"
    assert abs(datetime.fromisoformat(answer["schedule_at"]) - now) < timedelta(seconds=30)


async def test_the_site_zone_is_the_configured_one(tmp_path, sqlite_url, start_suite):
    """With ``[ums] timezone = America/New_York`` a naive time is New York time,
    in the API and in the WAS form alike."""
    suite = await start_suite(make_config(tmp_path, sqlite_url, ums__timezone="America/New_York"), ["was"])
    site = Site(suite, "http://" + suite.services["was"].address)
    await add_users(suite.ctx.db)
    headers = await api_headers(site)
    async with suite.ctx.db.begin() as conn:
        await addressbooks.ensure_book(conn, "Everyone")
        await template_store.save(conn, "notice", "email", suite.ctx.clock(), kind="transactional",
                                  subject="Notice", body_text="Hello")
    made = await post_json(site.client(), "/api/v1/campaigns", campaign_json("ny", "2030-05-01T09:00"), headers)
    assert made.status == 201, made.text
    assert (await stored(suite.ctx, "ny"))["schedule_at"] == datetime(2030, 5, 1, 13, 0, tzinfo=UTC)   # EDT

    client = await site.logged_in("marketer")
    form = await client.post_form("/campaigns", {"name": "ny-form", "kind": "transactional",
                                                 "template": "email:notice", "books": "Everyone",
                                                 "schedule_at": "2030-12-01T09:00"})
    assert form.status == 303, form.text
    assert (await stored(suite.ctx, "ny-form"))["schedule_at"] == datetime(2030, 12, 1, 14, 0, tzinfo=UTC)  # EST
    page = await client.get(form.headers["Location"])
    assert "2030-12-01 09:00 EST" in page.text


async def test_the_form_shows_a_past_or_bad_start_as_an_error_on_the_page(site):
    async with site.ctx.db.begin() as conn:
        await template_store.save(conn, "notice", "email", site.ctx.clock(), kind="transactional",
                                  subject="Notice", body_text="Hello")
        await addressbooks.ensure_book(conn, "Everyone")
    client = await site.logged_in("marketer")
    fields = {"name": "late-notice", "kind": "transactional", "template": "email:notice", "books": "Everyone"}
    refused = await client.post_form("/campaigns", {**fields, "schedule_at": "2020-01-01T09:00"})
    assert refused.status == 400
    error = re.search(r'id="campaign-error">([^<]*)<', refused.text).group(1)
    assert "in the past" in error and "2020-01-01 09:00 KST" in error
    assert 'value="late-notice"' in refused.text          # what was typed is kept
    assert "New campaign" in refused.text                  # the form, not an error page
    async with site.ctx.db.connect() as conn:
        assert await campaign_api.list_campaigns(conn) == []

    made = await client.post_form("/campaigns", fields)
    path = made.headers["Location"]
    for at, words in (("2020-01-01T09:00", "in the past"), ("next week", "Bad time")):
        answer = await client.post_form(f"{path}/schedule", {"at": at}, page=path)
        assert answer.status == 400
        assert words in re.search(r'id="campaign-error">([^<]*)<', answer.text).group(1)
        assert "data-state>draft<" in answer.text
    started = await client.post_form(f"{path}/schedule", {"now": "1"}, page=path)
    assert started.status == 303 and "scheduled" in started.headers["Location"]


# --- (b) pause and resume a campaign due in two days, with PASS running ----------------------

@pytest.fixture
async def was_and_pass(tmp_path, database_url, start_suite):
    sink = await Sink(SinkHandler()).start()
    suite = await start_suite(pass_config(tmp_path, database_url, sink.port), ["was", "pass"])
    site = Site(suite, "http://" + suite.services["was"].address)
    await add_users(suite.ctx.db)
    yield site, sink
    await sink.close()


async def test_pause_and_resume_keep_a_campaign_due_in_two_days_scheduled(was_and_pass):
    site, sink = was_and_pass
    db = site.ctx.db
    await seed_audience(db, 5, book="Everyone", night=True)
    await seed_audience(db, 3, book="Control", night=True, start=100)
    await add_template(db, name="notice", kind="transactional")
    headers = await api_headers(site)
    api = site.client()
    due = (site.ctx.clock() + timedelta(days=2)).replace(second=0, microsecond=0)

    # through the API
    made = await post_json(api, "/api/v1/campaigns", campaign_json("api-later", due.isoformat()), headers)
    api_id = json.loads(made.body)["id"]
    for action, state in (("schedule", "scheduled"), ("pause", "paused"), ("resume", "scheduled")):
        reply = await post_json(api, f"/api/v1/campaigns/{api_id}/{action}", {}, headers)
        assert reply.status == 200, reply.text
        assert json.loads(reply.body)["state"] == state, action
        assert json.loads(reply.body)["schedule_at"] == due.isoformat(), action

    # through the WAS buttons (the forms they submit)
    browser = await site.logged_in("marketer")
    local = due.astimezone(SEOUL)
    made = await browser.post_form("/campaigns", {"name": "was-later", "kind": "transactional",
                                                  "template": "email:notice", "books": "Everyone",
                                                  "schedule_at": local.strftime("%Y-%m-%dT%H:%M")})
    assert made.status == 303, made.text
    path = made.headers["Location"]
    was_id = int(path.rsplit("/", 1)[1])
    for action, state in (("schedule", "scheduled"), ("pause", "paused"), ("resume", "scheduled")):
        reply = await browser.post_form(f"{path}/{action}", page=path)
        assert reply.status == 303 and reply.headers["Location"].endswith(f"Campaign+is+now+{state}"), reply.text

    # PASS is live: a campaign started now through the API is sent and completed meanwhile
    made = await post_json(api, "/api/v1/campaigns", campaign_json("control", book="Control"), headers)
    control = json.loads(made.body)["id"]
    assert (await post_json(api, f"/api/v1/campaigns/{control}/schedule", {"now": True}, headers)).status == 200

    async def control_completed():
        return (await stored(site.ctx, control))["state"] == "completed"

    await eventually(control_completed, timeout=20, interval=0.2)
    await asyncio.sleep(0.5)   # a few more PASS polls
    for campaign_id in (api_id, was_id):
        row = await stored(site.ctx, campaign_id)
        assert (row["state"], row["schedule_at"], row["started_at"]) == ("scheduled", due, None)
        assert await delivery_count(site.ctx, campaign_id) == 0
    assert sorted(rcpt for rcpt, _, _ in sink.handler.received) == [f"user{n}@example.com" for n in (100, 101, 102)]

    page = await browser.get(path)
    card = progress_card(page.text)
    assert "data-state>scheduled<" in card
    assert "completed" not in card and "running" not in card
    assert f"{local:%Y-%m-%d %H:%M} KST" in page.text and "not started: starts" in card
    view = json.loads((await api.get(f"/api/v1/campaigns/{api_id}", **headers)).body)
    assert (view["state"], view["total"], view["holds"]) == ("scheduled", 0, [])
    assert view["hold_lines"] == [f"not started: starts {local:%Y-%m-%d %H:%M} KST (in 1 d 23 h)"]


# --- (c) why deliveries wait, at 03:30 in Seoul -------------------------------------------

async def test_the_campaign_page_says_night_time_rule_until_eight_at_half_past_three(
        tmp_path, database_url, start_suite):
    sink = await Sink(SinkHandler()).start()
    clock = Clock(datetime(2026, 11, 23, 18, 30, tzinfo=UTC))        # 03:30 on the 24th in Seoul
    try:
        suite = await start_suite(pass_config(tmp_path, database_url, sink.port), ["was", "pass"], clock=clock)
        site = Site(suite, "http://" + suite.services["was"].address)
        db = suite.ctx.db
        await add_users(db)
        await seed_audience(db, 6, book="Offers", night=False)                  # no night-time consent
        await seed_audience(db, 2, book="Offers", consent=False, start=50)      # no consent at all
        await add_template(db, name="offer", kind="advertising")
        headers = await api_headers(site)
        api = site.client()
        made = await post_json(api, "/api/v1/campaigns", {
            "name": "night-offer", "kind": "advertising", "channel": "email", "template": "offer",
            "audience": {"books": ["Offers"]}}, headers)
        campaign_id = json.loads(made.body)["id"]
        assert (await post_json(api, f"/api/v1/campaigns/{campaign_id}/schedule", {}, headers)).status == 200

        async def held():
            counts = await states(db, campaign_id)
            return counts.get("waiting") == 6 and counts.get("suppressed") == 2

        await eventually(held, timeout=30, interval=0.2)
        assert sink.handler.received == []

        client = await site.logged_in("marketer")
        page = await client.get(f"/campaigns/{campaign_id}")
        card = progress_card(page.text)
        assert "data-state>running<" in card
        holds = re.findall(r"<li>([^<]*)</li>", card.split('id="holds"')[1])
        assert holds == ["6 waiting: night-time rule (21:00–08:00), next send 08:00 KST (in 4 h 30 m)"]
        counted = dict(re.findall(r'data-count="(\w+)">(\d+)<', card))
        assert counted == {"sent": "0", "failed": "0", "suppressed": "2", "waiting": "6", "total": "8", "done": "2"}

        view = json.loads((await api.get(f"/api/v1/campaigns/{campaign_id}", **headers)).body)
        [night] = view["holds"]
        assert (night["hold"], night["count"], night["release_at"]) == ("night", 6, "2026-11-23T23:00:00+00:00")
        assert "night-time rule" in night["text"] and "08:00 KST" in night["text"]
        assert view["sent"] + view["failed"] + view["suppressed"] + view["waiting"] == view["total"] == 8
        progress = json.loads((await client.get(f"/campaigns/{campaign_id}/progress")).body)
        assert progress["counts"]["suppressed"] == 2 and progress["counts"]["total"] == 8
    finally:
        await sink.close()
