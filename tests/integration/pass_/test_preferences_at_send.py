"""What a customer chose on the preference centre is honoured where messages
are made and sent: an EPS notice goes first to their preferred channel (and
never to one they turned off), and advertising on a channel they turned off
ends unsent, with the reason, while everyone else gets it."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from pass_support import NOW, add_template, pass_config, seed_audience, start_campaign, states
from tests.conftest import make_config
from tests.helpers import eventually
from tests.integration.eps.eps_support import EpsClient, add_customer, add_templates, new_key
from ums.clock import Clock
from ums.db.models import deliveries
from ums.store import preferences as preference_store

SERVICE = {
    "name": "deposit", "event_type": "deposit", "kind": "transactional",
    "templates": {"email": "deposit-email", "fax": "deposit-fax"}, "policy": {"default": ["email", "fax"]},
}


async def test_an_event_goes_to_the_preferred_channel_first(tmp_path, database_url, pass_db, start_suite):
    await add_templates(pass_db, ("deposit-email", "email"), ("deposit-fax", "fax"))
    chooser = await add_customer(pass_db, "C1", email="c1@example.com", fax="0212345678")
    await add_customer(pass_db, "C2", email="c2@example.com", fax="0298765432")
    async with pass_db.begin() as conn:
        await preference_store.save(conn, chooser, [], [], "fax", "preference-centre", NOW)
    suite = await start_suite(make_config(tmp_path, database_url), ["eps"])   # no PASS: deliveries as made
    client = EpsClient(suite, pass_db, await new_key(pass_db, "account"))
    status, _, reply = await client.request("POST", "/v1/services", json.dumps(SERVICE).encode(),
                                            {"Content-Type": "application/json"})
    assert status in (200, 201), reply
    for customer in ("C1", "C2"):
        status, _, reply = await client.post_json({"type": "deposit", "customer_id": customer, "data": {"amount": 5}})
        assert status == 202, reply

    async def made():
        async with pass_db.connect() as conn:
            rows = (await conn.execute(select(deliveries.c.recipient, deliveries.c.channel))).all()
        return rows if len(rows) == 2 else None

    assert sorted(await eventually(made, timeout=20, interval=0.1)) == [
        ("0212345678", "fax"), ("c2@example.com", "email")]


async def test_advertising_on_a_channel_turned_off_ends_unsent(tmp_path, database_url, pass_db, sink, start_suite):
    ids = await seed_audience(pass_db, 3, night=True)
    await add_template(pass_db)
    async with pass_db.begin() as conn:
        await preference_store.save(conn, ids[1], ["email"], [], "fax", "preference-centre", NOW)
    clock = Clock(NOW + timedelta(minutes=5))   # 12:05 in Seoul, whatever the hour the test runs
    await start_suite(pass_config(tmp_path, database_url, sink.port), ["pass"], clock=clock)
    campaign_id = await start_campaign(pass_db, now=clock.now)

    async def settled():
        counts = await states(pass_db, campaign_id)
        return counts if sum(counts.values()) == 3 and counts.get("sent", 0) + counts.get("suppressed", 0) == 3 \
            else None

    assert await eventually(settled, timeout=30, interval=0.2) == {"sent": 2, "suppressed": 1}
    assert sorted(rcpt for rcpt, _, _ in sink.handler.received) == ["user0@example.com", "user2@example.com"]
    async with pass_db.connect() as conn:
        row = (await conn.execute(select(deliveries).where(deliveries.c.contact_id == ids[1]))).one()
    assert row.last_code == "preference" and "preference centre" in row.last_error
