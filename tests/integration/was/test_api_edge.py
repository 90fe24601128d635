"""The /api/v1 edge against hostile clients, over real HTTP on loopback.

Every JSON endpoint gets malformed documents (deep nesting, NaN/Infinity/1e999,
huge integers, lone surrogates, NUL, non-UTF-8), each field of its schema with
values of the wrong type, huge integers in paths and queries and non-UTF-8
header bytes: each answer is a 4xx with a reason, none is a 500, nothing is
stored, and a valid request is served right after. Then recipients per
channel, idempotency keys, API-key scopes and web roles on the API.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from was_site import WAS_SCOPES, Site, api_key

from ums.clock import Clock
from ums.db.models import campaigns, contacts, deliveries, idempotent_requests
from ums.store import addressbooks, apikeys
from was.openapi import DOCUMENT

SCHEMAS = DOCUMENT["components"]["schemas"]
TEMPLATE = {"name": "offer", "subject": "Offer", "body_text": "Hello {{ name }}", "body_html": "<p>Hello</p>",
            "sender_name": "UMS Bank", "sender_contact": "1588-0000"}
VALID = {
    "Send": {"channel": "email", "recipient": "kim@example.com", "subject": "Hi", "body": "Your balance is low.",
             "kind": "transactional", "template": None, "variables": {"amount": "10,000"},
             "due_at": None, "priority": 5},
    "Contact": {"customer_id": "C-1", "name": "Kim", "email": "kim@example.com", "fax": "02-555-0101",
                "phone": "010-1234-5678", "grade": "VIP", "timezone": "Asia/Seoul", "locale": "ko",
                "book": "Everyone", "consent": {"granted": True, "source": "web form", "date": "2025-01-01",
                                                "night_time": False}},
    "Campaign": {"name": "spring", "kind": "transactional", "channel": "email", "template": TEMPLATE,
                 "audience": {"books": ["Everyone"], "segment": {"grade": ["VIP"]}}, "schedule": None,
                 "throttle": {"rate": 5, "per_hour": 100, "concurrency": 2}, "expires_after": 3600,
                 "expiry_hours": None, "created_by": None},
    "CampaignAction": {"at": None, "now": True},
}
#: a value of each JSON type; a field gets every one its schema does not allow
SAMPLES = {"object": {"a": 1}, "array": [1, 2], "string": "text", "integer": 7, "number": 1.5, "boolean": True}
#: documents that are not JSON a server should take
MALFORMED = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"priority": NaN}', b'{"priority": Infinity}', b'{"priority": -Infinity}', b'{"priority": 1e999}',
    b'{"priority": ' + b"9" * 40 + b"}",
    b'{"recipient": "\\ud800"}', b'{"\\udfff": 1}', b'{"name": "a\\u0000b"}',
    b'{"name": "\xff\xfe"}', b"\xef\xbb\xbf\xff",
    b'{"channel": "email", ', b"", b"[1, 2]", b'"text"', b"null", b"12",
]


async def raw_request(base: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send exactly these bytes (request line and headers, then ``body``); the status and body."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 15)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def headers(key: str) -> dict:
    return {"content-type": "application/json", "x-api-key": key}


async def count(site, table) -> int:
    async with site.ctx.db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(table))


def wrong_values(schema: dict) -> list:
    """Values of ``schema``'s field of every JSON type it does not take."""
    allowed = schema.get("type")
    if allowed is None and "enum" in schema:
        allowed = sorted({"string" if isinstance(v, str) else "null" for v in schema["enum"]})
    if allowed is None:   # oneOf: string or object
        allowed = [branch["type"] for branch in schema["oneOf"]]
    allowed = set(allowed if isinstance(allowed, list) else [allowed])
    if "number" in allowed:
        allowed.add("integer")
    wrong = [value for kind, value in SAMPLES.items() if kind not in allowed]
    if "integer" in allowed and "number" not in allowed:
        wrong.append(2.5)
    return wrong


def field_cases(name: str) -> list[tuple[str, dict]]:
    """(field, body) for each top-level and nested field of schema ``name`` with a wrong-typed value."""
    cases = []
    for field, schema in SCHEMAS[name]["properties"].items():
        for value in wrong_values(schema):
            cases.append((field, {**VALID[name], field: value}))
        nested = schema.get("properties") or {}
        for inner, inner_schema in nested.items():
            for value in wrong_values(inner_schema):
                base = dict(VALID[name].get(field) or {inner: None})
                cases.append((f"{field}.{inner}", {**VALID[name], field: {**base, inner: value}}))
    return cases


async def assert_refused(reply, field: str | None = None, what: str = ""):
    assert 400 <= reply.status < 500, (what, reply.status, reply.text[:300])
    reason = json.loads(reply.body)["reason"]
    assert reason, what
    if field is not None:
        assert field.split(".")[0] in reason, (what, reason)
    return reason


async def test_hostile_json_on_every_endpoint_is_a_4xx_with_a_reason_and_never_a_500(site):
    key = await api_key(site.ctx)
    client = site.client()
    async with site.ctx.db.begin() as conn:
        await addressbooks.ensure_book(conn, "Everyone")
    made = await client.request("POST", "/api/v1/campaigns", json.dumps({**VALID["Campaign"], "name": "base"}).encode(),
                                headers(key))
    assert made.status == 201, made.text
    campaign_id = json.loads(made.body)["id"]
    endpoints = {"Send": "/api/v1/send", "Contact": "/api/v1/contacts", "Campaign": "/api/v1/campaigns",
                 "CampaignAction": f"/api/v1/campaigns/{campaign_id}/schedule"}
    tried = 0
    for name, path in endpoints.items():
        for body in MALFORMED:
            if name == "CampaignAction" and body == b"":
                continue   # an action without a body is fine (start at its own time)
            await assert_refused(await client.request("POST", path, body, headers(key)), what=f"{path} {body[:40]!r}")
            tried += 1
        for field, body in field_cases(name):
            reply = await client.request("POST", path, json.dumps(body).encode(), headers(key))
            await assert_refused(reply, field, f"{path} {field}={body.get(field.split('.')[0])!r}")
            tried += 1
        unknown = await client.request("POST", path, json.dumps({**VALID[name], "extra": 1}).encode(), headers(key))
        assert "extra" in await assert_refused(unknown, what=path)
    assert tried > 200
    # numbers JSON cannot hold and bad strings are refused naming where they are
    for text, field in ((b'{"channel":"email","recipient":"a@example.com","priority":1e999}', "priority"),
                        (b'{"customer_id":"C-9","name":"\\ud800","email":"x@example.com"}', "name")):
        path = "/api/v1/send" if b"priority" in text else "/api/v1/contacts"
        assert field in await assert_refused(await client.request("POST", path, text, headers(key)))

    assert await count(site, deliveries) == 0
    assert await count(site, contacts) == 0
    assert await count(site, campaigns) == 1
    assert site.suite.services["was"].app.request_counts.get(500, 0) == 0

    # and the server still serves a valid request of each kind
    sent = await client.request("POST", "/api/v1/send", json.dumps(VALID["Send"]).encode(), headers(key))
    assert sent.status == 202, sent.text
    added = await client.request("POST", "/api/v1/contacts", json.dumps(VALID["Contact"]).encode(), headers(key))
    assert added.status == 201, added.text
    created = await client.request("POST", "/api/v1/campaigns", json.dumps(VALID["Campaign"]).encode(), headers(key))
    assert created.status == 201, created.text
    started = await client.request("POST", endpoints["CampaignAction"], b'{"now": true}', headers(key))
    assert started.status == 200 and json.loads(started.body)["state"] in ("scheduled", "running"), started.text
    assert await count(site, deliveries) >= 1 and await count(site, contacts) == 1


async def test_huge_numbers_in_paths_and_queries_and_bad_header_bytes(site):
    key = await api_key(site.ctx)
    client = site.client()
    huge = "9" * 23
    for path in (f"/api/v1/deliveries/{huge}", "/api/v1/deliveries/-1", "/api/v1/deliveries/abc",
                 "/api/v1/deliveries/%D9%A3", f"/api/v1/campaigns/{huge}", "/api/v1/campaigns/%D9%A3",
                 "/api/v1/deliveries/0"):
        reply = await client.get(path, **{"x-api-key": key})
        assert reply.status == 404, (path, reply.status, reply.text)
        assert json.loads(reply.body)["reason"]
    paused = await client.request("POST", f"/api/v1/campaigns/{huge}/pause", b"", headers(key))
    assert paused.status == 404
    for query in ("limit=abc", f"limit={huge}", "limit=-1", "limit=0", "limit=1e999", "limit=%EF%BC%95",
                  "q=%00", "limit=5&q=" + "x" * 500):
        reply = await client.get(f"/api/v1/contacts?{query}", **{"x-api-key": key})
        assert reply.status == 400, (query, reply.status, reply.text)
        assert json.loads(reply.body)["reason"]
    for query in ("limit=abc", "media=pigeon", "folder=%00"):
        assert (await client.get(f"/api/v1/mailbox?{query}", **{"x-api-key": key})).status == 400, query
    assert (await client.get("/api/v1/contacts?limit=5", **{"x-api-key": key})).status == 200

    # bytes that are not UTF-8 in headers: a key that cannot be a key is a 401, the rest 4xx or served
    bad_key = await client.request("GET", "/api/v1/mailbox", headers={"x-api-key": b"\xff\xfe\x80key"})
    assert bad_key.status == 401 and json.loads(bad_key.body)["reason"]
    # the one error body, as EPS answers it: a code, the reason, the status; and how to authenticate
    assert json.loads(bad_key.body)["error"] == "unauthorized" and json.loads(bad_key.body)["status"] == 401
    assert {k.lower(): v for k, v in bad_key.headers.items()}.get("www-authenticate", "").startswith("Bearer")
    bearer = await client.request("GET", "/api/v1/mailbox", headers={"authorization": b"Bearer \xc3\x28"})
    assert bearer.status == 401
    odd = {"content-type": b"application/json; charset=\xff", "x-api-key": key.encode(), "accept": b"\xfe\xff"}
    sent = await client.request("POST", "/api/v1/send", json.dumps(VALID["Send"]).encode(), odd)
    assert sent.status == 202, sent.text
    bad_idem = await client.request("POST", "/api/v1/send", json.dumps(VALID["Send"]).encode(),
                                    {**headers(key), "idempotency-key": b"\xff\xfe"})
    assert bad_idem.status == 400 and "Idempotency-Key" in json.loads(bad_idem.body)["reason"]
    cookie = await client.request("GET", "/api/v1/mailbox", headers={"cookie": b"ums_session=\xff\xfe"})
    assert cookie.status == 401
    csrf = await client.request("POST", "/logout", b"", {"cookie": b"ums_session=\xff", "x-csrf-token": b"\xff"})
    assert csrf.status in (303, 401, 403)
    # raw bytes in the request line (twisted.web itself refuses those) and in the header block
    for head in (b"GET /api/v1/campaigns/\xd9\xa3 HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode(),
                 b"GET /api/v1/deliveries/\xff\xfe HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode(),
                 b"GET /api/v1/contacts?q=\xff&limit=\xfe HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode()):
        status, _ = await raw_request(site.base, head)
        assert 400 <= status < 500, (head, status)
    status, answer = await raw_request(site.base, b"GET /api/v1/mailbox HTTP/1.1\r\nHost: x\r\n"
                                       b"X-API-Key: \x80\x81\r\nX-Other: \xff")
    assert status == 401 and json.loads(answer)["reason"]
    status, _ = await raw_request(site.base, b"POST /api/v1/send HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                  b"application/json\r\nX-API-Key: " + key.encode(), json.dumps(VALID["Send"]).encode())
    assert status == 202
    assert site.suite.services["was"].app.request_counts.get(500, 0) == 0
    assert (await client.get("/api/v1/mailbox", **{"x-api-key": key})).status == 200


# --- recipients ---------------------------------------------------------------------------

BAD_RECIPIENTS = [
    ("email", "a@example.com\r\nBcc: evil@example.net"),
    ("email", "a@example.com\nBcc: evil@example.net"),
    ("email", "not-an-email"),
    ("email", "a@example.com, b@example.com"),
    ("email", "a@example.com;b@example.com"),
    ("email", "Kim <a@example.com>"),
    ("email", "a@example.com b@example.com"),
    ("fax", "abc"),
    ("fax", "02-555-0101\r\n"),
    ("fax", "+82 2 555 0100, +82 2 555 0101"),
    ("voice", "12"),
    ("voice", "sip:evil@203.0.113.9"),
]


async def test_recipients_are_checked_per_channel_and_nothing_is_queued(site):
    key = await api_key(site.ctx)
    client = site.client()
    for channel, recipient in BAD_RECIPIENTS:
        body = {"channel": channel, "recipient": recipient, "subject": "Hi", "body": "x"}
        reply = await client.request("POST", "/api/v1/send", json.dumps(body).encode(), headers(key))
        assert reply.status == 422, (channel, recipient, reply.status, reply.text)
        assert "recipient" in json.loads(reply.body)["reason"]
    for priority in (99, -5, 10):
        body = {"channel": "email", "recipient": "kim@example.com", "subject": "Hi", "body": "x", "priority": priority}
        reply = await client.request("POST", "/api/v1/send", json.dumps(body).encode(), headers(key))
        assert reply.status == 422 and "priority" in json.loads(reply.body)["reason"], reply.text
    xml = (b"<send><channel>email</channel><recipient>a@example.com&#13;&#10;Bcc: evil@example.net</recipient>"
           b"<subject>Hi</subject><body>x</body></send>")
    reply = await client.request("POST", "/api/v1/send", xml, {"content-type": "application/xml", "x-api-key": key})
    assert reply.status == 422 and "<reason>" in reply.text and "recipient" in reply.text
    assert "<error>invalid</error>" in reply.text and "<status>422</status>" in reply.text
    assert await count(site, deliveries) == 0

    for channel, recipient in (("email", "kim@example.com"), ("fax", "+82 2 555 0100"), ("voice", "010-1234-5678")):
        body = {"channel": channel, "recipient": recipient, "subject": "Hi", "body": "x", "priority": 9}
        reply = await client.request("POST", "/api/v1/send", json.dumps(body).encode(), headers(key))
        assert reply.status == 202, (channel, reply.text)
    assert await count(site, deliveries) == 3


# --- idempotency ------------------------------------------------------------------------------

async def test_an_idempotency_key_replays_the_answer_and_refuses_another_body(site):
    key, other = await api_key(site.ctx), await api_key(site.ctx, "information")
    client = site.client()
    body = json.dumps(VALID["Send"]).encode()
    once = {**headers(key), "idempotency-key": "order-42"}
    first = await client.request("POST", "/api/v1/send", body, once)
    assert first.status == 202
    again = await client.request("POST", "/api/v1/send", body, once)
    assert again.status == 202 and json.loads(again.body) == json.loads(first.body)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await count(site, deliveries) == 1

    changed = json.dumps({**VALID["Send"], "recipient": "lee@example.com"}).encode()
    conflict = await client.request("POST", "/api/v1/send", changed, once)
    assert conflict.status == 409 and "Idempotency-Key" in json.loads(conflict.body)["reason"]
    other_path = await client.request("POST", "/api/v1/contacts", json.dumps(VALID["Contact"]).encode(), once)
    assert other_path.status == 409
    assert await count(site, deliveries) == 1 and await count(site, contacts) == 0

    # keys are per caller: another system's same key is its own request
    theirs = await client.request("POST", "/api/v1/send", body, {**headers(other), "idempotency-key": "order-42"})
    assert theirs.status == 202 and json.loads(theirs.body)["delivery"] != json.loads(first.body)["delivery"]
    # twins sent at once are done once
    twins = await asyncio.gather(*(client.request("POST", "/api/v1/send", body, {**headers(key), "idempotency-key": "t"})
                                   for _ in range(4)))
    assert {reply.status for reply in twins} == {202}
    assert len({json.loads(reply.body)["delivery"] for reply in twins}) == 1
    assert await count(site, deliveries) == 3
    # a refused request is not remembered: the key can be used once it is right
    bad = {**VALID["Send"], "priority": 99}
    once_more = {**headers(key), "idempotency-key": "fix-me"}
    assert (await client.request("POST", "/api/v1/send", json.dumps(bad).encode(), once_more)).status == 422
    assert (await client.request("POST", "/api/v1/send", body, once_more)).status == 202
    assert await count(site, idempotent_requests) == 4


async def test_an_answer_is_remembered_for_a_day_then_forgotten(config, start_suite):
    """A key's answer replays within 24 hours; a day later WAS has forgotten it (the
    table does not grow for ever) and the same key is a new request."""
    clock = Clock(datetime(2026, 12, 1, 9, 0, tzinfo=timezone(timedelta(hours=9))))
    suite = await start_suite(config, ["was"], clock=clock)
    site = Site(suite, "http://" + suite.services["was"].address)
    key = await api_key(site.ctx)
    client = site.client()
    body = json.dumps(VALID["Send"]).encode()
    once = {**headers(key), "idempotency-key": "order-42"}
    first = json.loads((await client.request("POST", "/api/v1/send", body, once)).body)["delivery"]
    clock.now += timedelta(hours=23)
    again = await client.request("POST", "/api/v1/send", body, once)
    assert again.headers.get("Idempotent-Replayed") == "true" and json.loads(again.body)["delivery"] == first
    clock.now += timedelta(hours=2)   # 25 hours after the first: another request purges it
    other = await client.request("POST", "/api/v1/send", body, {**headers(key), "idempotency-key": "order-43"})
    assert other.status == 202
    assert await count(site, idempotent_requests) == 1
    anew = await client.request("POST", "/api/v1/send", body, once)
    assert anew.status == 202 and anew.headers.get("Idempotent-Replayed") is None
    assert json.loads(anew.body)["delivery"] != first
    assert await count(site, deliveries) == 3


async def test_campaign_creation_and_actions_are_idempotent(site):
    key = await api_key(site.ctx)
    client = site.client()
    async with site.ctx.db.begin() as conn:
        await addressbooks.ensure_book(conn, "Everyone")
    body = json.dumps(VALID["Campaign"]).encode()
    once = {**headers(key), "idempotency-key": "campaign-1"}
    first = await client.request("POST", "/api/v1/campaigns", body, once)
    again = await client.request("POST", "/api/v1/campaigns", body, once)
    assert first.status == again.status == 201 and first.body == again.body
    assert await count(site, campaigns) == 1
    campaign_id = json.loads(first.body)["id"]
    action = {**headers(key), "idempotency-key": "start-1"}
    started = await client.request("POST", f"/api/v1/campaigns/{campaign_id}/schedule", b'{"now": true}', action)
    replayed = await client.request("POST", f"/api/v1/campaigns/{campaign_id}/schedule", b'{"now": true}', action)
    assert started.status == replayed.status == 200 and started.body == replayed.body


# --- scopes and roles ---------------------------------------------------------------------------

async def test_each_route_needs_its_scope(site):
    client = site.client()
    async with site.ctx.db.begin() as conn:
        _, events_only = await apikeys.create(conn, "account", site.ctx.clock())   # the back-office defaults
        revoked_id, revoked = await apikeys.create(conn, "old", site.ctx.clock(), scopes=WAS_SCOPES)
        await apikeys.revoke(conn, revoked_id, site.ctx.clock())
    send = json.dumps(VALID["Send"]).encode()
    refused = await client.request("POST", "/api/v1/send", send, headers(events_only))
    assert refused.status == 403 and "send" in json.loads(refused.body)["reason"]
    for path in ("/api/v1/contacts", "/api/v1/campaigns", "/api/v1/mailbox", "/api/v1/deliveries/1"):
        assert (await client.get(path, **{"x-api-key": events_only})).status == 403, path
    assert (await client.request("POST", "/api/v1/send", send, headers(revoked))).status == 401
    assert (await client.request("POST", "/api/v1/send", send, headers("ums_not-a-key"))).status == 401
    assert await count(site, deliveries) == 0

    routes = {"send": ("POST", "/api/v1/send", send), "contacts": ("GET", "/api/v1/contacts", None),
              "campaigns": ("GET", "/api/v1/campaigns", None), "mailbox": ("GET", "/api/v1/mailbox", None)}
    for scope in WAS_SCOPES:
        key = await api_key(site.ctx, f"only-{scope}", [scope])
        for route_scope, (method, path, body) in routes.items():
            reply = await client.request(method, path, body, headers(key))
            if route_scope == scope:
                assert reply.status in (200, 202), (scope, path, reply.text)
            else:
                assert reply.status == 403, (scope, path, reply.status)


async def test_a_delivery_is_shown_only_to_whoever_queued_it(site):
    mine, theirs = await api_key(site.ctx), await api_key(site.ctx, "information")
    client = site.client()
    sent = await client.request("POST", "/api/v1/send", json.dumps(VALID["Send"]).encode(), headers(mine))
    delivery_id = json.loads(sent.body)["delivery"]
    assert (await client.get(f"/api/v1/deliveries/{delivery_id}", **{"x-api-key": mine})).status == 200
    assert (await client.get(f"/api/v1/deliveries/{delivery_id}", **{"x-api-key": theirs})).status == 404
    user = await site.logged_in("user")
    assert (await user.get(f"/api/v1/deliveries/{delivery_id}")).status == 404
    admin = await site.logged_in("admin")
    assert (await admin.get(f"/api/v1/deliveries/{delivery_id}")).status == 200


async def session_post(client, path: str, body: bytes = b"") -> object:
    token = (await client.get("/inbox")).csrf()
    return await client.request("POST", path, body, {"content-type": "application/json", "x-csrf-token": token})


async def test_web_roles_apply_to_every_api_route(site):
    key = await api_key(site.ctx)
    async with site.ctx.db.begin() as conn:
        await addressbooks.ensure_book(conn, "Everyone")
    made = await site.client().request("POST", "/api/v1/campaigns", json.dumps(VALID["Campaign"]).encode(),
                                       headers(key))
    campaign_id = json.loads(made.body)["id"]
    await site.client().request("POST", f"/api/v1/campaigns/{campaign_id}/schedule", b'{"now": true}', headers(key))

    operator = await site.logged_in("operator")
    refused = await session_post(operator, f"/api/v1/campaigns/{campaign_id}/pause")
    assert refused.status == 403 and "role" in json.loads(refused.body)["reason"]
    for action in ("schedule", "resume", "cancel"):
        assert (await session_post(operator, f"/api/v1/campaigns/{campaign_id}/{action}")).status == 403, action
    assert (await operator.get("/api/v1/campaigns")).status == 403
    assert (await operator.get(f"/api/v1/campaigns/{campaign_id}")).status == 403
    assert (await session_post(operator, "/api/v1/campaigns", json.dumps(VALID["Campaign"]).encode())).status == 403
    async with site.ctx.db.connect() as conn:
        state = await conn.scalar(select(campaigns.c.state).where(campaigns.c.id == campaign_id))
    assert state != "paused"

    user = await site.logged_in("user")
    # a mailbox user reaches the contacts routes, and only their own contacts (tests/integration/was/test_contact_scoping.py)
    assert json.loads((await user.get("/api/v1/contacts")).body) == {"contact": []}
    assert (await session_post(user, "/api/v1/contacts", json.dumps(VALID["Contact"]).encode())).status == 201
    assert (await user.get("/api/v1/mailbox")).status == 200
    sent = await session_post(user, "/api/v1/send", json.dumps(VALID["Send"]).encode())
    assert sent.status == 202, sent.text
    # a session's POST still needs its CSRF token
    forged = await user.request("POST", "/api/v1/send", json.dumps(VALID["Send"]).encode(),
                                {"content-type": "application/json"})
    assert forged.status == 403 and "security token" in json.loads(forged.body)["reason"]

    marketer = await site.logged_in("marketer")
    paused = await session_post(marketer, f"/api/v1/campaigns/{campaign_id}/pause")
    assert paused.status == 200 and json.loads(paused.body)["state"] == "paused", paused.text


async def test_unknown_campaigns_and_actions_are_404(site):
    key = await api_key(site.ctx)
    client = site.client()
    assert (await client.get("/api/v1/campaigns/no-such-thing", **{"x-api-key": key})).status == 404
    assert (await client.request("POST", "/api/v1/campaigns/no-such/pause", b"", headers(key))).status == 404
    assert (await client.request("POST", "/api/v1/campaigns/1/explode", b"", headers(key))).status == 404


# --- the XML side ---------------------------------------------------------------------------------

XML_CAMPAIGN = """<?xml version="1.0" encoding="UTF-8"?>
<campaign name="{name}" kind="transactional" channel="email">
  <template name="offer"/>
  <audience><book>Everyone</book></audience>
  {extra}
</campaign>"""


async def test_xml_values_the_columns_cannot_hold_are_refused(site):
    key = await api_key(site.ctx)
    client = site.client()
    xml = {"content-type": "application/xml", "x-api-key": key}
    async with site.ctx.db.begin() as conn:
        await addressbooks.ensure_book(conn, "Everyone")
    cases = [
        ("/api/v1/contacts", f"<contact><email>kim@example.com</email><book>{'b' * 200}</book></contact>"),
        ("/api/v1/contacts", f"<contact><name>{'n' * 300}</name><email>kim@example.com</email></contact>"),
        ("/api/v1/contacts", "<contact><email>kim@example.com</email>"
                             f"<consent granted='true' source='{'s' * 200}' date='2025-01-01'/></contact>"),
        ("/api/v1/contacts", "<contact><email>a@example.com\r\nBcc: x@example.net</email></contact>"),
        ("/api/v1/send", f"<send><channel>email</channel><recipient>kim@example.com</recipient>"
                         f"<template>{'t' * 200}</template></send>"),
        ("/api/v1/campaigns", XML_CAMPAIGN.format(name="big", extra=f"<expiry hours='{'9' * 400}'/>")),
        ("/api/v1/campaigns", XML_CAMPAIGN.format(name="big2", extra=f"<expiry hours='{'9' * 20}'/>")),
        ("/api/v1/campaigns", XML_CAMPAIGN.format(name="big3", extra=f"<throttle rate='{'9' * 30}'/>")),
    ]
    for path, body in cases:
        reply = await client.request("POST", path, body.encode(), xml)
        assert 400 <= reply.status < 500 and "<reason>" in reply.text, (path, body[:60], reply.status, reply.text)
    assert await count(site, contacts) == 0 and await count(site, campaigns) == 0 and await count(site, deliveries) == 0
    assert site.suite.services["was"].app.request_counts.get(500, 0) == 0

    made = await client.request("POST", "/api/v1/contacts", b"<contact><customer-id>C-7</customer-id><name>Kim</name>"
                                b"<email>kim@example.com</email><book>VIP</book></contact>", xml)
    assert made.status == 201 and "<created>True</created>" in made.text


async def test_an_answer_in_xml_survives_characters_xml_cannot_hold(site):
    key = await api_key(site.ctx)
    client = site.client()
    body = json.dumps({"customer_id": "C-8", "name": "Kim\u0001Lee\u0008", "email": "kim@example.com"}).encode()
    assert (await client.request("POST", "/api/v1/contacts", body, headers(key))).status == 201
    listed = await client.get("/api/v1/contacts?format=xml", **{"x-api-key": key})
    assert listed.status == 200 and listed.headers["Content-Type"].startswith("application/xml")
    assert "Kim\ufffdLee\ufffd" in listed.text
