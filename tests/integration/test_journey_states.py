"""A paused journey's customers wait where they are (nothing is sent) and go
on when it is resumed; a stopped journey ends them; a branch on a contact
field sends each grade its own way."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select

from ums.db.models import contacts, deliveries, journey_runs
from ums.journeys import definitions, engine
from ums.store import templates as template_store

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=timezone.utc)
FLOW = {"name": "grades", "kind": "transactional", "steps": [
    {"id": "vip?", "branch": {"field": "grade", "cases": {"VIP": "call"}, "otherwise": "mail"}},
    {"id": "call", "send": {"channel": "voice", "template": "note"}, "next": "done"},
    {"id": "mail", "send": {"channel": "email", "template": "note"}},
    {"id": "done", "goal": {}}]}


async def seed(db) -> list[int]:
    async with db.begin() as conn:
        await conn.execute(insert(contacts), [
            {"customer_id": f"C{n}", "email": f"c{n}@example.com", "phone": f"0101234{n:04d}",
             "grade": "vip" if n % 2 else "NORMAL"} for n in range(4)])
        ids = list((await conn.execute(select(contacts.c.id).order_by(contacts.c.id))).scalars())
        for channel in ("email", "voice"):
            await template_store.save(conn, "note", channel, NOW, kind="transactional", subject="s", body_text="t")
        await engine.create(conn, definitions.from_dict(FLOW), None, NOW)
        await engine.enter(conn, "grades", ids, "cli", NOW)
    return ids


async def channels(db) -> Counter:
    async with db.connect() as conn:
        return Counter((await conn.execute(select(deliveries.c.channel))).scalars())


async def test_pause_holds_everyone_and_resume_goes_on_by_grade(db):
    await seed(db)
    walker = engine.Engine(db)
    async with db.begin() as conn:
        await engine.set_state(conn, "grades", "paused", NOW)
    assert await walker.advance_due(NOW + timedelta(minutes=1)) == 0
    assert await channels(db) == Counter()
    async with db.begin() as conn:
        await engine.set_state(conn, "grades", "active", NOW)
    assert await walker.advance_due(NOW + timedelta(minutes=2)) == 4
    assert await channels(db) == Counter({"voice": 2, "email": 2})   # grade matched whatever its case
    async with db.connect() as conn:
        states = Counter((await conn.execute(select(journey_runs.c.state))).scalars())
        shown = await engine.summary(conn, "grades")
    assert states == {"goal": 4}
    assert {step["id"]: step["passed"] for step in shown["steps"]} == {"vip?": 4, "call": 2, "mail": 2, "done": 4}


async def test_stop_ends_every_run_and_nothing_more_is_sent(db):
    await seed(db)
    async with db.begin() as conn:
        done = await engine.set_state(conn, "grades", "stopped", NOW)
    assert done["stopped_runs"] == 4
    assert await engine.Engine(db).advance_due(NOW + timedelta(minutes=1)) == 0
    assert await channels(db) == Counter()
