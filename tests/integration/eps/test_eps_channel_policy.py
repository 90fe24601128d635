"""Must-show 5 (EPS part): the channel policy picks the channel and the fallback
list; the customer timeline shows every delivery. The permanent bounce is
applied here through ``ums.outbox.fall_back`` — the same call MAS makes."""

from sqlalchemy import select, update

from eps_support import SAMPLES, add_customer
from ums.db.models import deliveries
from ums.outbox import fall_back
from ums.store import utcnow


async def test_a_vip_without_a_voice_number_gets_the_email(eps):
    await eps.register(SAMPLES / "large-deposit-alert.json")
    await add_customer(eps.db, "V1", grade="VIP", email="vip@example.com", phone=None)
    _, _, reply = await eps.post_json({"type": "deposit", "customer_id": "V1", "data": {"amount": 5000000}})
    _, _, shown = await eps.request("GET", f"/v1/events/{reply['id']}")
    assert [(d["channel"], d["recipient"], d["fallback"]) for d in shown["deliveries"]] == [
        ("email", "vip@example.com", [])]
    status, _, view = await eps.request("GET", "/v1/customers/V1/timeline")
    assert status == 200
    assert [(e["kind"], e.get("channel")) for e in view["entries"]] == [("event", None), ("delivery", "email")]


async def test_a_permanent_email_bounce_falls_back_to_fax_in_the_timeline(eps):
    await eps.register(SAMPLES / "large-deposit-alert.json")
    await add_customer(eps.db, "N1", email="bounce@example.com", fax="02-555-0199")
    _, _, reply = await eps.post_json({"type": "deposit", "customer_id": "N1", "data": {"amount": 1200000}})
    async with eps.db.begin() as conn:
        email = dict((await conn.execute(select(deliveries).where(deliveries.c.event_id == reply["id"]))).one()._mapping)
        assert email["fallback"] == [{"channel": "fax", "recipient": "02-555-0199", "template": "deposit-fax"}]
        await conn.execute(update(deliveries).where(deliveries.c.id == email["id"]).values(
            state="failed", last_code="5.1.1", bounced_at=utcnow()))
        await fall_back(conn, email, utcnow())
    _, _, view = await eps.request("GET", "/v1/customers/N1/timeline")
    steps = [(e["kind"], e.get("channel"), e.get("state")) for e in view["entries"]]
    assert steps == [("event", None, "dispatched"), ("delivery", "email", "failed"), ("delivery", "fax", "queued")]
