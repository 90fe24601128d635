"""Two workers advancing the same journey runs at the same moment (what two
PASS processes sharing one database do): each run's step is done once —
one delivery per customer, one history row per step — never twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select

from ums.db import connect
from ums.db.models import contacts, deliveries, journey_runs
from ums.journeys import definitions, engine
from ums.store import journeys as journey_store
from ums.store import templates as template_store

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=timezone.utc)   # 12:00 in Seoul
FLOW = {"name": "race", "kind": "transactional", "steps": [
    {"id": "mail", "send": {"channel": "email", "template": "note"}},
    {"id": "a-day", "wait": {"duration": "1d"}},
    {"id": "again", "send": {"channel": "email", "template": "note"}},
    {"id": "done", "exit": {}}]}
COUNT = 200


async def test_two_workers_never_do_a_step_twice(db, database_url):
    async with db.begin() as conn:
        await conn.execute(insert(contacts), [{"customer_id": f"C{n}", "email": f"c{n}@example.com"}
                                              for n in range(COUNT)])
        ids = list((await conn.execute(select(contacts.c.id))).scalars())
        await template_store.save(conn, "note", "email", NOW, kind="transactional", subject="s", body_text="t")
        await engine.create(conn, definitions.from_dict(FLOW), None, NOW)
        await engine.enter(conn, "race", ids, "cli", NOW)
    other = connect(database_url)   # the second worker: its own connections, as another process has
    try:
        workers = [engine.Engine(db, engine.Settings(batch=COUNT)), engine.Engine(other, engine.Settings(batch=COUNT))]
        moved = []
        for when in (NOW, NOW + timedelta(days=1, seconds=1)):
            moved.append(await asyncio.gather(*(worker.advance_due(when) for worker in workers)))
    finally:
        await other.close()
    async with db.connect() as conn:
        per_contact = Counter((await conn.execute(select(deliveries.c.contact_id))).scalars())
        states = Counter((await conn.execute(select(journey_runs.c.state))).scalars())
        journey = await journey_store.by_name(conn, "race")
        runs = await journey_store.runs_with_steps(conn, journey["id"])
    assert [sum(pair) for pair in moved] == [COUNT, COUNT]   # each run moved once per go, by one worker
    print("runs moved by each worker:", moved)
    assert set(per_contact.values()) == {2} and len(per_contact) == COUNT
    assert states == {"exited": COUNT}
    assert {tuple(kind for _, kind, _ in steps) for steps in runs.values()} == {
        ("entered", "send", "wait", "send", "exit")}
