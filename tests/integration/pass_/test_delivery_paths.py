"""The delivery core through the paths that make deliveries (#15).

Must-show 2: with ``[pass] message_id_domain`` set, a delivery made by EPS
(a real event posted over HTTP), a one-off send and a campaign's expansion
all carry a Message-ID of that domain — not the default ``ums.local``.
Lanes: the EPS service's ``lane="urgent"`` reaches its deliveries, a one-off
transactional send is ``notice`` and a campaign ``marketing``; and a claim
takes an urgent delivery ahead of a marketing backlog that is older.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from tests.conftest import make_config
from tests.helpers import eventually
from tests.integration.eps.eps_support import EpsClient, add_customer, add_templates, new_key
from ums.db import connect
from ums.db.models import deliveries
from ums.outbox import SendRequest, enqueue
from ums.store import campaigns as campaign_store
from ums.store import deliveries as delivery_store
from ums.store import utcnow

DOMAIN = "mail.bank.example"
URGENT_SERVICE = {
    "name": "otp", "event_type": "otp", "kind": "transactional", "lane": "urgent",
    "templates": {"email": "otp-email"}, "policy": {"default": ["email"]},
}


async def _rows(db) -> list[dict]:
    async with db.connect() as conn:
        found = await conn.execute(select(deliveries).order_by(deliveries.c.id))
        return [dict(row._mapping) for row in found]


async def test_eps_one_off_and_campaign_deliveries_carry_the_configured_domain_and_their_lane(
        tmp_path, database_url, start_suite):
    config = make_config(tmp_path, database_url, pass__message_id_domain=DOMAIN, mas__local_domains="ums.local")
    db = connect(database_url)
    try:
        await add_templates(db, ("otp-email", "email"), ("offer", "email"))
        await add_customer(db, "C1", email="c1@example.com")
        await add_customer(db, "C2", email="c2@example.com")
        suite = await start_suite(config, ["eps"])   # no PASS: the deliveries stay as they were made
        client = EpsClient(suite, db, await new_key(db, "account"))
        status, _, reply = await client.request("POST", "/v1/services", json.dumps(URGENT_SERVICE).encode(),
                                                {"Content-Type": "application/json"})
        assert status in (200, 201), reply
        status, _, reply = await client.post_json({"type": "otp", "customer_id": "C1", "data": {"code": "123456"}})
        assert status == 202, reply
        await eventually(lambda: _rows(db), timeout=20, interval=0.1)

        now = utcnow()
        async with db.begin() as conn:
            await enqueue(conn, SendRequest("email", "once@example.com"), now)
            campaign_id = await campaign_store.insert_campaign(
                conn, name="spring", kind="advertising", channel="email", template_name="offer", audience={},
                state="running")
            campaign = await campaign_store.get(conn, campaign_id)
            assert await campaign_store.expand_batch(conn, campaign, now, 100) == 2
    finally:
        await db.close()

    made = await _rows(connect(database_url))
    by_path = {"eps": [r for r in made if r["event_id"]], "one-off": [r for r in made if r["recipient"] == "once@example.com"],
               "campaign": [r for r in made if r["campaign_id"]]}
    assert {path: len(rows) for path, rows in by_path.items()} == {"eps": 1, "one-off": 1, "campaign": 2}
    assert all(row["message_id"].endswith(f"@{DOMAIN}>") for row in made), [r["message_id"] for r in made]
    assert len({row["message_id"] for row in made}) == len(made)
    assert {path: {row["lane"] for row in rows} for path, rows in by_path.items()} == \
        {"eps": {"urgent"}, "one-off": {"notice"}, "campaign": {"marketing"}}


async def test_a_claim_takes_an_urgent_delivery_before_an_older_marketing_backlog(db):
    now = utcnow()
    async with db.begin() as conn:
        for n in range(30):
            await enqueue(conn, SendRequest("email", f"m{n}@example.com", kind="advertising"), now - timedelta(minutes=5))
        await enqueue(conn, SendRequest("email", "notice@example.com"), now - timedelta(minutes=1))
        urgent = await enqueue(conn, SendRequest("email", "otp@example.com", lane="urgent"), now)
    async with db.begin() as conn:
        claimed = await conn.run_sync(delivery_store.claim, "w1", now, now + timedelta(minutes=1), 2)
    assert [row["recipient"] for row in claimed if row["id"] == urgent] == ["otp@example.com"]
    assert sorted(row["lane"] for row in claimed) == ["notice", "urgent"]
    async with db.begin() as conn:
        only_priority = await conn.run_sync(delivery_store.claim, "w2", now, now + timedelta(minutes=1), 10,
                                            None, ("urgent", "notice"))
    assert only_priority == []   # the rest is marketing: a priority claim leaves it for the campaign's batches
