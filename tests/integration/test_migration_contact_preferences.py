"""Migration 0012: contacts made before it have no preferences (every channel
and topic on, no preferred channel) and can save some after it; the
downgrade drops only the new table, contacts and consent records stay."""

from datetime import datetime, timezone

from sqlalchemy import inspect, text

from ums import preferences
from ums.db.migrate import downgrade, upgrade
from ums.store import preferences as store

NOW = datetime(2026, 12, 2, 5, 30, tzinfo=timezone.utc)


async def tables(db) -> set[str]:
    async with db.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_existing_contacts_start_with_everything_on_and_can_save(db):
    await downgrade(db, "0011")
    assert "contact_preferences" not in await tables(db)
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO contacts (id, customer_id, email) VALUES (7, 'C7', 'c7@example.com')"))
        await conn.execute(text("INSERT INTO consents (contact_id, channel, purpose, granted, night_time, source, "
                                "recorded_at) VALUES (7, 'any', 'advertising', true, false, 'branch', :at)"),
                           {"at": NOW})
    await upgrade(db)
    async with db.begin() as conn:
        assert await preferences.preferred_channel(conn, 7) is None
        assert await preferences.allows(conn, 7, "voice", "대출", advertising=True)
        await store.save(conn, 7, ["email"], [], "fax", preferences.SOURCE, NOW)
    async with db.connect() as conn:
        assert await preferences.preferred_channel(conn, 7) == "fax"
        assert not await preferences.allows(conn, 7, "email", None, advertising=False)
    await downgrade(db, "0011")
    assert "contact_preferences" not in await tables(db)
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM contacts")) == 1
        assert await conn.scalar(text("SELECT count(*) FROM consents")) == 1
    await upgrade(db)
