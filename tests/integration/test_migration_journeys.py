"""Migration 0014: journeys can be created and entered by contacts made
before it, a journey email's opens (no campaign) can be counted after it, and
the downgrade drops only the journey tables (and such campaign-less opens),
leaving contacts and campaign opens alone."""

from datetime import datetime, timezone

from sqlalchemy import inspect, text

from ums.db.migrate import downgrade, upgrade
from ums.journeys import definitions, engine
from ums.store import journeys as store
from ums.store import tracking

NOW = datetime(2026, 12, 3, 3, 0, tzinfo=timezone.utc)
FLOW = {"name": "hello", "steps": [{"id": "mail", "send": {"channel": "email", "template": "t"}}]}


async def tables(db) -> set[str]:
    async with db.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_contacts_from_before_enter_journeys_and_the_downgrade_keeps_them(db):
    await downgrade(db, "0013_caps_digest")
    assert not {"journeys", "journey_runs", "journey_steps"} & await tables(db)
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO contacts (id, customer_id, email) VALUES (7, 'C7', 'c7@example.com')"))
        await conn.execute(text("INSERT INTO deliveries (id, channel, recipient, contact_id, state, due_at) "
                                "VALUES (1, 'email', 'c7@example.com', 7, 'sent', :at)"), {"at": NOW})
    await upgrade(db)
    async with db.begin() as conn:
        await engine.create(conn, definitions.from_dict(FLOW), "marketing", NOW)
        assert len(await engine.enter(conn, "hello", [7], "cli", NOW)) == 1
        assert await tracking.record(conn, None, 1, 7, tracking.OPEN, "", None, NOW)
    async with db.connect() as conn:
        counts = await store.step_counts(conn, (await store.by_name(conn, "hello"))["id"])
    assert counts["at"] == {"mail": 1}
    await downgrade(db, "0013_caps_digest")
    assert not {"journeys", "journey_runs", "journey_steps"} & await tables(db)
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM contacts")) == 1
        assert await conn.scalar(text("SELECT count(*) FROM tracking_events")) == 0
    await upgrade(db)
