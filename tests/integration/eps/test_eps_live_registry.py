"""Must-show 3: services change on the running server, and nothing held is lost."""

import asyncio

from sqlalchemy import func, select

from ums.event_services import definitions, registry
from eps_support import SAMPLES, add_customer
from ums.db.models import deliveries, events
from ums.store import utcnow

DEFINITION = {
    "name": "card-payment-alert", "event_type": "card_payment", "kind": "transactional",
    "priority": 2, "conditions": [], "templates": {"email": "deposit-email"},
    "policy": {"default": ["email"]},
}


async def post(eps, number: int):
    status, _, body = await eps.post_json(
        {"id": f"card-{number}", "type": "card_payment", "customer_id": "C3001", "data": {"amount": number}})
    assert status == 202, body
    return body


async def test_a_service_registered_while_events_arrive_handles_only_later_events(eps):
    await add_customer(eps.db, "C3001", email="jung@example.com")
    before, after, stop_posting = [], [], asyncio.Event()

    async def keep_posting():
        number = 0
        while not stop_posting.is_set():
            number += 1
            await post(eps, number)
            (after if registered.is_set() else before).append(number)

    registered = asyncio.Event()
    poster = asyncio.ensure_future(keep_posting())
    await asyncio.sleep(0.3)
    async with eps.db.begin() as conn:  # what `ums service register` does
        await registry.register(conn, definitions.from_dict(DEFINITION), utcnow(), "test")
    registered.set()
    await asyncio.sleep(0.3)
    stop_posting.set()
    await poster

    async with eps.db.connect() as conn:
        states = dict((row[0], row[1]) for row in await conn.execute(
            select(events.c.idempotency_key, events.c.state)))
    assert before and after
    # events whose post started before the commit: none was handled by it
    assert all(states[f"card-{n}"] == "unmatched" for n in before[:-1])
    # every event posted after the commit: handled by it
    assert all(states[f"card-{n}"] == "dispatched" for n in after[1:])


async def test_a_stopped_service_holds_events_and_dispatches_all_on_resume(eps):
    await eps.register(SAMPLES / "large-deposit-alert.json")
    await add_customer(eps.db, "C3002", email="han@example.com")
    status, _, _ = await eps.request("POST", "/v1/services/large-deposit-alert/stop")
    assert status == 200
    replies = await asyncio.gather(*[
        eps.post_json({"id": f"held-{n}", "type": "deposit", "customer_id": "C3002", "data": {"amount": 2000000}})
        for n in range(100)])
    assert {status for status, _, _ in replies} == {202}
    assert {body["state"] for _, _, body in replies} == {"held"}
    async with eps.db.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(deliveries)) == 0

    status, _, resumed = await eps.request("POST", "/v1/services/large-deposit-alert/resume")
    assert status == 200 and resumed["dispatched"] == 100
    await asyncio.sleep(1.2)  # let a held-event sweep run too: it must not dispatch again
    async with eps.db.connect() as conn:
        per_event = list(await conn.execute(
            select(deliveries.c.event_id, func.count()).group_by(deliveries.c.event_id)))
        states = list(await conn.execute(select(events.c.state, func.count()).group_by(events.c.state)))
    assert len(per_event) == 100 and {n for _, n in per_event} == {1}
    assert states == [("dispatched", 100)]


async def test_services_are_listed_shown_and_versioned_over_http(eps):
    await eps.register(SAMPLES / "large-deposit-alert.json")
    status, _, again = await eps.register(SAMPLES / "large-deposit-alert.json")
    assert again["version"] == 2
    _, _, listing = await eps.request("GET", "/v1/services")
    assert [(s["name"], s["version"], s["state"]) for s in listing["services"]] == [
        ("large-deposit-alert", 2, "active")]
    status, _, bad = await eps.request("POST", "/v1/services", b'{"name": "x"}', {"Content-Type": "application/json"})
    assert status == 400 and "event_type" in bad["reason"]
    status, _, _ = await eps.request("DELETE", "/v1/services/large-deposit-alert")
    assert status == 200
    status, _, missing = await eps.request("GET", "/v1/services/large-deposit-alert")
    assert status == 404 and "large-deposit-alert" in missing["reason"]
