"""Migration 0013_caps_digest: deliveries made before it are counted by the
frequency caps after it (the new index changes no row), digest events can be
stored once it ran, and the downgrade drops only what it added."""

from datetime import datetime, timedelta, timezone

from sqlalchemy import inspect, text

from ums.db.migrate import downgrade, upgrade
from ums.store import caps as cap_store

NOW = datetime(2026, 12, 3, 5, 0, tzinfo=timezone.utc)   # 14:00 in Seoul


async def tables(db) -> set[str]:
    async with db.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def indexes(db, table: str) -> set[str]:
    async with db.connect() as conn:
        return {ix["name"] for ix in await conn.run_sync(lambda sync: inspect(sync).get_indexes(table))}


async def test_deliveries_from_before_count_for_the_caps_and_the_downgrade_keeps_them(db):
    await downgrade(db, "0012")
    assert "digest_events" not in await tables(db)
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO contacts (id, customer_id, email) VALUES (7, 'C7', 'c7@example.com')"))
        await conn.execute(text(
            "INSERT INTO deliveries (channel, recipient, contact_id, kind, state, message_id, token, due_at, "
            "finished_at, created_at) VALUES ('email', 'c7@example.com', 7, 'advertising', 'sent', '<m1@x>', 't1', "
            ":at, :at, :at)"), {"at": NOW - timedelta(hours=2)})
    await upgrade(db)
    assert "ix_deliveries_contact_kind" in await indexes(db, "deliveries")
    async with db.begin() as conn:
        sent = await conn.run_sync(lambda sync: cap_store.advertising_sent(sync, [7], NOW - timedelta(days=8), [],
                                                                           NOW))
        assert sent == {7: [NOW - timedelta(hours=2)]}
        await conn.execute(text(
            "INSERT INTO digest_events (service_name, contact_id, request, received_at, window_ends_at) "
            "VALUES ('card-payment', 7, '{}', :at, :at)"), {"at": NOW})
    await downgrade(db, "0012")
    assert "digest_events" not in await tables(db)
    assert "ix_deliveries_contact_kind" not in await indexes(db, "deliveries")
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM deliveries")) == 1
    await upgrade(db)
