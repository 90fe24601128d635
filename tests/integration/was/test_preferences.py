"""The preference centre behind every unsubscribe link (issue #18): a customer
with the link of a message sent to them turns channels and topics off, picks
a preferred channel or refuses all advertising; the store API
(:mod:`ums.preferences`) answers accordingly, every change is a consent
record at the application clock's time, on the timeline and in
``ums customer preferences``; a GET, a forged form or another message's form
changes nothing. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from was_site import Site

from ums import preferences
from ums.clock import Clock
from ums.db.models import consents, contact_preferences
from ums.outbox import SendRequest, enqueue
from ums.store import contacts, deliveries, suppression, timeline
from ums.store import preferences as preference_store

KST = timezone(timedelta(hours=9))
#: 14:30 in Seoul (05:30 UTC): what the consent records and pages must say
AT = datetime(2026, 12, 2, 14, 30, tzinfo=KST)
ALL_TOPICS = ["대출", "카드", "예금", "이벤트"]


@pytest.fixture
async def centre(config, start_suite):
    suite = await start_suite(config, ["was"], clock=Clock(AT))
    site = Site(suite, "http://" + suite.services["was"].address)
    site.people = {}
    async with suite.ctx.db.begin() as conn:
        for customer, email, fax, phone in (("C700", "kim@example.com", "02-555-0100", "010-1234-5678"),
                                            ("C701", "lee@example.com", "02-555-0101", "010-2222-3333")):
            contact_id = await contacts.create(conn, customer_id=customer, name=customer, email=email, fax=fax,
                                               phone=phone)
            delivery_id = await enqueue(conn, SendRequest("email", email, kind="advertising", contact_id=contact_id,
                                                          variables={"subject": "(광고) 새 카드", "body": "x"}),
                                        suite.ctx.clock())
            token = (await deliveries.get(conn, delivery_id))["token"]
            site.people[customer] = {"contact_id": contact_id, "token": token, "email": email}
    return site


def form_token(reply) -> str:
    return re.search(r'name="form_token" value="([0-9a-f]+)"', reply.text).group(1)


async def rows(site, table) -> list[dict]:
    async with site.ctx.db.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(table.select())]


async def save(client, token: str, form: str, **fields):
    fields = {"form_token": form, "action": "save", "topic": ALL_TOPICS, "channel": ["email", "fax", "voice"],
              **fields}
    return await client.post(f"/unsubscribe/{token}", fields)


async def test_a_get_shows_the_centre_and_changes_nothing(centre):
    kim = centre.people["C700"]
    page = await centre.client().get(f"/unsubscribe/{kim['token']}")
    assert page.status == 200
    assert "confirm-unsubscribe" in page.text and 'id="save-preferences"' in page.text
    assert all(f'value="{topic}" checked' in page.text for topic in ALL_TOPICS)
    assert 'name="preferred" value="" checked' in page.text
    assert (await centre.client().get("/unsubscribe/no-such-token")).status == 404
    assert await rows(centre, contact_preferences) == [] and await rows(centre, consents) == []
    async with centre.ctx.db.connect() as conn:
        assert await suppression.entries(conn) == []
        assert await preferences.preferred_channel(conn, kim["contact_id"]) is None
        assert await preferences.allows(conn, kim["contact_id"], "email", "카드", advertising=True)


async def test_saved_choices_answer_the_store_api_and_are_consent_records(centre, tmp_path):
    kim = centre.people["C700"]
    client = centre.client()
    form = form_token(await client.get(f"/unsubscribe/{kim['token']}"))
    reply = await save(client, kim["token"], form, channel=["fax", "voice"], topic=["대출", "예금", "이벤트"],
                       preferred="fax")
    assert reply.status == 200, reply.text
    assert 'id="saved"' in reply.text and "email off" in reply.text
    assert 'name="channel" value="email" >' in reply.text and 'name="channel" value="fax" checked' in reply.text
    assert 'value="카드" >' in reply.text and 'name="preferred" value="fax" checked' in reply.text
    assert "2026-12-02 14:30 KST" in reply.text

    contact_id = kim["contact_id"]
    async with centre.ctx.db.connect() as conn:
        assert await preferences.preferred_channel(conn, contact_id) == "fax"
        assert not await preferences.allows(conn, contact_id, "email", None, advertising=False)
        assert not await preferences.allows(conn, contact_id, "fax", "카드", advertising=True)
        assert await preferences.allows(conn, contact_id, "fax", "대출", advertising=True)
        assert await preferences.allows(conn, contact_id, "voice", "카드", advertising=False)  # a card payment notice
        lee = centre.people["C701"]["contact_id"]
        assert await preferences.preferred_channel(conn, lee) is None
        assert await preferences.allows(conn, lee, "email", "카드", advertising=True)
        records = await preference_store.consent_records(conn, contact_id)
        view = await timeline.for_customer(conn, "C700")
    assert sorted((r["purpose"], r["channel"], r["granted"]) for r in records) == [
        ("channel", "email", False), ("preferred", "fax", True), ("topic:카드", "any", False)]
    assert {r["source"] for r in records} == {"preference-centre"}
    assert {r["recorded_at"] for r in records} == {AT.astimezone(timezone.utc)}
    assert len([e for e in view["entries"] if e["kind"] == "consent"]) == 3

    again = await save(client, kim["token"], form, channel=["fax", "voice"], topic=["대출", "예금", "이벤트"],
                       preferred="fax")
    assert "nothing changed" in again.text
    assert len(await rows(centre, consents)) == 3

    shown = await cli(centre, tmp_path, "customer", "show", "C700")
    assert "time (KST)" in shown and "2026-12-02 14:30:00" in shown and "via preference-centre" in shown
    summary = json.loads(await cli(centre, tmp_path, "customer", "preferences", "C700", "--json"))
    assert summary["channels"] == {"email": False, "fax": True, "voice": True}
    assert summary["topics"] == {"대출": True, "카드": False, "예금": True, "이벤트": True}
    assert summary["preferred_channel"] == "fax" and summary["refuses_advertising"] is False
    assert summary["updated_at"] == "2026-12-02T14:30:00+09:00"
    text = await cli(centre, tmp_path, "customer", "preferences", "C700")
    assert "email off" in text and "preferred channel fax" in text and "2026-12-02 14:30 KST" in text


async def cli(site, tmp_path, *args) -> str:
    from click.testing import CliRunner

    from ums.cli import cli as ums_cli

    home = tmp_path / "cli-home"
    home.mkdir(exist_ok=True)
    (home / "ums.cfg").write_text(f"[database]\nurl = {site.ctx.config.database_url}\n")
    result = await asyncio.to_thread(CliRunner().invoke, ums_cli, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


async def test_forged_missing_or_foreign_form_tokens_change_nothing(centre):
    kim, lee = centre.people["C700"], centre.people["C701"]
    client = centre.client()
    lee_form = form_token(await client.get(f"/unsubscribe/{lee['token']}"))
    for form in ("", "0" * 32, "not-hex", lee_form):
        reply = await save(client, kim["token"], form, channel=["fax"], preferred="fax", refuse_advertising="on")
        assert reply.status == 403, (form, reply.status)
        assert "open the link in the message again" in reply.text
    bare = await client.post(f"/unsubscribe/{kim['token']}", {"action": "unsubscribe"})
    assert bare.status == 403
    assert await rows(centre, contact_preferences) == [] and await rows(centre, consents) == []
    async with centre.ctx.db.connect() as conn:
        assert await suppression.entries(conn) == []


async def test_refusing_all_advertising_is_suppression_on_every_channel_and_can_be_lifted(centre):
    kim = centre.people["C700"]
    client = centre.client()
    form = form_token(await client.get(f"/unsubscribe/{kim['token']}"))
    assert (await save(client, kim["token"], form, refuse_advertising="on")).status == 200
    async with centre.ctx.db.connect() as conn:
        scopes = {(e["channel"], e["address"]): (e["scope"], e["source"]) for e in await suppression.entries(conn)}
        assert not await preferences.allows(conn, kim["contact_id"], "fax", "대출", advertising=True)
        assert await preferences.allows(conn, kim["contact_id"], "fax", "대출", advertising=False)
    assert scopes == {("email", "kim@example.com"): ("advertising", "preference-centre"),
                      ("fax", "025550100"): ("advertising", "preference-centre"),
                      ("voice", "01012345678"): ("advertising", "preference-centre")}
    page = await client.get(f"/unsubscribe/{kim['token']}")
    assert 'name="refuse_advertising" value="on" checked' in page.text

    assert (await save(client, kim["token"], form)).status == 200
    async with centre.ctx.db.connect() as conn:
        assert await suppression.entries(conn) == []
        assert await preferences.allows(conn, kim["contact_id"], "email", "대출", advertising=True)
        records = await preference_store.consent_records(conn, kim["contact_id"])
    assert [(r["purpose"], r["granted"]) for r in records] == [("advertising", True), ("advertising", False)]


async def test_the_one_button_unsubscribe_refuses_advertising_with_a_consent_record(centre):
    kim = centre.people["C700"]
    client = centre.client()
    form = form_token(await client.get(f"/unsubscribe/{kim['token']}"))
    done = await client.post(f"/unsubscribe/{kim['token']}", {"form_token": form, "action": "unsubscribe"})
    assert done.status == 200 and 'id="unsubscribed"' in done.text
    async with centre.ctx.db.connect() as conn:
        assert await suppression.scope_of(conn, "email", kim["email"]) == "advertising"
    [record] = await rows(centre, consents)
    assert (record["purpose"], record["granted"], record["source"]) == ("advertising", False, "preference-centre")


async def test_an_impossible_choice_is_a_400_with_its_reason_and_saves_nothing(centre):
    kim = centre.people["C700"]
    client = centre.client()
    form = form_token(await client.get(f"/unsubscribe/{kim['token']}"))
    none_on = await save(client, kim["token"], form, channel=[])
    assert none_on.status == 400 and "keep at least one channel on" in none_on.text
    off_preferred = await save(client, kim["token"], form, channel=["email"], preferred="fax")
    assert off_preferred.status == 400 and "preferred channel fax is turned off" in off_preferred.text
    pigeon = await save(client, kim["token"], form, preferred="pigeon")
    assert pigeon.status == 400 and "unknown channel &#39;pigeon&#39;" in pigeon.text
    assert await rows(centre, contact_preferences) == [] and await rows(centre, consents) == []
