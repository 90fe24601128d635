"""The XML/JSON API: XSD validation, hardened parsing, queueing; one-click unsubscribe; metrics."""

from __future__ import annotations

import json

from ums.db.models import deliveries
from ums.store import apikeys, suppression

GOOD_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<send>
  <channel>email</channel>
  <recipient>kim@example.com</recipient>
  <kind>transactional</kind>
  <subject>Balance alert</subject>
  <body>Your balance is low.</body>
  <variables><var name="amount">10,000</var></variables>
</send>"""

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<send><channel>email</channel><recipient>&lol3;</recipient></send>"""


async def api_key(site) -> str:
    async with site.ctx.db.begin() as conn:
        _, key = await apikeys.create(conn, "account", site.ctx.clock(),
                                      scopes=["send", "contacts", "campaigns", "mailbox"])
    return key


async def queued(site) -> list[dict]:
    async with site.ctx.db.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(deliveries.select().order_by(deliveries.c.id))]


async def test_xml_send_is_validated_and_queued(site):
    key = await api_key(site)
    client = site.client()
    headers = {"content-type": "application/xml", "x-api-key": key}

    bad = await client.request("POST", "/api/v1/send", GOOD_XML.replace(b"<channel>email</channel>",
                                                                        b"<channel>pigeon</channel>"), headers)
    assert bad.status == 400
    assert bad.headers["Content-Type"].startswith("application/xml")
    assert "element channel" in bad.text

    missing = await client.request("POST", "/api/v1/send", b"<send><channel>email</channel></send>", headers)
    assert missing.status == 400 and "recipient" in missing.text

    bomb = await client.request("POST", "/api/v1/send", BOMB, headers)
    assert bomb.status == 400 and "lollol" not in bomb.text

    assert await queued(site) == []
    good = await client.request("POST", "/api/v1/send", GOOD_XML, headers)
    assert good.status == 202, good.text
    assert "<state>queued</state>" in good.text
    [row] = await queued(site)
    assert (row["channel"], row["recipient"], row["state"]) == ("email", "kim@example.com", "queued")
    assert row["variables"]["amount"] == "10,000" and row["variables"]["subject"] == "Balance alert"


async def test_json_send_needs_a_key_and_answers_in_json(site):
    client = site.client()
    body = json.dumps({"channel": "email", "recipient": "lee@example.com", "subject": "Hi", "body": "x"}).encode()
    refused = await client.request("POST", "/api/v1/send", body, {"content-type": "application/json"})
    assert refused.status == 401
    key = await api_key(site)
    sent = await client.request("POST", "/api/v1/send", body, {"content-type": "application/json", "x-api-key": key})
    assert sent.status == 202 and json.loads(sent.body)["state"] == "queued"
    status = await client.get(f"/api/v1/deliveries/{json.loads(sent.body)['delivery']}", **{"x-api-key": key})
    assert json.loads(status.body)["recipient"] == "lee@example.com"
    assert (await client.get("/api/openapi.json")).status == 200


async def test_one_click_unsubscribe_suppresses_and_a_get_does_not(site):
    key = await api_key(site)
    client = site.client()
    body = json.dumps({"channel": "email", "recipient": "Park@Example.com", "subject": "Ad", "body": "x"}).encode()
    await client.request("POST", "/api/v1/send", body, {"content-type": "application/json", "x-api-key": key})
    [row] = await queued(site)

    page = await client.get(f"/unsubscribe/{row['token']}")
    assert page.status == 200 and "confirm-unsubscribe" in page.text
    async with site.ctx.db.connect() as conn:
        assert not await suppression.is_suppressed(conn, "email", "park@example.com")

    unknown = await client.post("/unsubscribe/not-a-token", {"List-Unsubscribe": "One-Click"})
    assert unknown.status == 404
    done = await client.post(f"/unsubscribe/{row['token']}", {"List-Unsubscribe": "One-Click"})
    assert done.status == 200
    async with site.ctx.db.connect() as conn:
        assert await suppression.is_suppressed(conn, "email", "park@example.com")

    metrics = await client.get("/metrics")
    assert 'ums_suppressions{channel="email"} 1' in metrics.text
    assert 'ums_deliveries{channel="email",state="queued"} 1' in metrics.text
