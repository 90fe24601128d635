"""Idempotency as payment APIs do it: the same key with the same event gets the
original answer; the same key with a different event is a 409 and changes
nothing — over HTTP (one after the other, or racing in one batch) and for a
telegram id reused for a different telegram (NACK 1006)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from eps.telegrams import CONFLICT, encode_fields, frame, load_layouts, parse_reply
from eps_support import SAMPLES, add_customer, new_key
from ums.db.models import deliveries, events

EVENT = {"type": "deposit", "customer_id": "C1", "data": {"amount": 3000000, "account": "110-1"}}


async def stored(db):
    async with db.connect() as conn:
        rows = [dict(row._mapping) for row in await conn.execute(select(events.c.id, events.c.payload))]
        sent = await conn.scalar(select(func.count()).select_from(deliveries))
    return rows, sent


async def test_the_same_key_with_a_different_body_is_a_conflict(eps):
    await eps.register(SAMPLES / "large-deposit-alert.json")
    await add_customer(eps.db, "C1", email="kim@example.com")
    status, _, first = await eps.post_json(EVENT, idempotency_key="pay-1")
    assert status == 202, first
    # the same event again, keys in another order: the original answer
    reordered = {"data": {"account": "110-1", "amount": 3000000}, "customer_id": "C1", "type": "deposit"}
    status, _, again = await eps.post_json(reordered, idempotency_key="pay-1")
    assert (status, again["id"], again["duplicate"]) == (200, first["id"], True)
    # another amount, customer or type under the same key: 409, nothing changes
    for changed in ({**EVENT, "data": {**EVENT["data"], "amount": 9000000}},
                    {**EVENT, "customer_id": "C2"}, {**EVENT, "type": "withdrawal"},
                    {**EVENT, "data": {**EVENT["data"], "amount": 3000000.0}}):
        status, _, reply = await eps.post_json(changed, idempotency_key="pay-1")
        assert status == 409, (changed, reply)
        assert "pay-1" in reply["reason"] and reply["error"] == "conflict"
    # the event id in the body is a key too
    status, _, by_id = await eps.post_json({**EVENT, "id": "TX-9"})
    assert status == 202
    status, _, reply = await eps.post_json({**EVENT, "id": "TX-9", "data": {"amount": 1}})
    assert status == 409, reply
    rows, sent = await stored(eps.db)
    assert [row["payload"] for row in rows] == [EVENT["data"], EVENT["data"]]
    assert sent == 2
    # another system may use the same key for its own event
    other = await new_key(eps.db, "information")
    status, _, reply = await eps.post_json({**EVENT, "customer_id": "C2"}, idempotency_key="pay-1", key=other)
    assert status == 202, reply


async def test_racing_posts_of_one_key_store_one_event_and_refuse_the_other_body(eps):
    await add_customer(eps.db, "C1", email="kim@example.com")
    bodies = [{**EVENT, "data": {"amount": n % 2}} for n in range(20)]
    replies = await asyncio.gather(*[eps.post_json(body, idempotency_key="race-1") for body in bodies])
    statuses = sorted(status for status, _, _ in replies)
    winner = next(body for (status, _, _), body in zip(replies, bodies) if status == 202)
    assert statuses.count(202) == 1, statuses
    assert set(statuses) <= {200, 202, 409}
    for (status, _, reply), body in zip(replies, bodies):
        assert status in ((200, 202) if body == winner else (409,)), (body, status, reply)
    rows, _ = await stored(eps.db)
    assert [row["payload"] for row in rows] == [winner["data"]]


LAYOUTS = load_layouts()


def deposit(telegram_id: str, amount: str) -> bytes:
    return frame(encode_fields(LAYOUTS["AC01"], {
        "telegram_id": telegram_id, "customer_id": "C1", "direction": "D",
        "account": "110-234-567890", "amount": amount, "balance": "9000000", "branch": "본점"}))


async def test_a_telegram_id_reused_for_another_telegram_is_nacked(eps):
    reader, writer = await asyncio.open_connection(eps.host, eps.telegram_port)

    async def send(data: bytes) -> dict:
        writer.write(data)
        header = await asyncio.wait_for(reader.readexactly(4), 5)
        return parse_reply(await asyncio.wait_for(reader.readexactly(int(header)), 5))

    try:
        first = await send(deposit("T-DUP-1", "1500000"))
        again = await send(deposit("T-DUP-1", "1500000"))
        other = await send(deposit("T-DUP-1", "2500000"))
        after = await send(deposit("T-DUP-2", "2500000"))
    finally:
        writer.close()
    assert (first["kind"], first["code"]) == ("ACK", "0000")
    assert (again["kind"], again["code"], again["detail"]) == ("ACK", "0001", first["detail"])
    assert (other["kind"], other["code"]) == ("NACK", CONFLICT)
    assert (after["kind"], after["code"]) == ("ACK", "0000")
    rows, _ = await stored(eps.db)
    assert len(rows) == 2 and rows[0]["payload"]["amount"] == 1500000
