"""Migrations build exactly the model, and go down and up again."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from ums.db import connect
from ums.db.migrate import current_revision, downgrade, head_revision, upgrade
from ums.db.models import in_model, metadata


async def test_migrated_schema_matches_the_model(db):
    assert await current_revision(db) == head_revision()

    def differences(sync_conn):
        context = MigrationContext.configure(sync_conn, opts={"compare_type": False,
                                                                "include_object": in_model})
        return compare_metadata(context, metadata)

    async with db.connect() as conn:
        diff = await conn.run_sync(differences)
    assert diff == []


async def test_downgrade_to_empty_and_back(db):
    await downgrade(db, "base")
    async with db.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    assert set(tables) <= {"alembic_version"}
    await upgrade(db)
    async with db.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    assert set(metadata.tables) <= set(tables)


async def test_upgrade_is_idempotent(tmp_path):
    db = connect(f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    await upgrade(db)
    await upgrade(db)
    assert await current_revision(db) == head_revision()
    await db.close()


async def test_existing_shared_books_stay_with_staff_after_0006(db):
    from sqlalchemy import insert, select

    from ums.db.models import address_book_shares, address_books

    await downgrade(db, "0005")
    async with db.begin() as conn:
        await conn.execute(insert(address_books).values(id=1, name="Branch", scope="shared"))
        await conn.execute(insert(address_books).values(id=2, name="Head office", scope="organisation"))
    await upgrade(db)
    async with db.connect() as conn:
        rows = (await conn.execute(select(address_book_shares.c.book_id, address_book_shares.c.role,
                                          address_book_shares.c.user_id))).all()
    assert sorted(rows) == [(1, "admin", None), (1, "marketer", None), (1, "operator", None)]


def _alembic_revision(sync_conn):
    return MigrationContext.configure(sync_conn).get_current_revision()


async def test_the_quick_schema_check_agrees_with_alembic(db, tmp_path):
    """`ums` commands check the schema without loading Alembic; the answers are Alembic's."""
    from alembic.script import ScriptDirectory

    from ums.db.migrate import alembic_config

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
    for revision in ("0001", "base"):
        await downgrade(db, revision)
        async with db.connect() as conn:
            assert await current_revision(db) == await conn.run_sync(_alembic_revision)
    assert await current_revision(db) is None
    await upgrade(db)
    async with db.connect() as conn:
        assert await current_revision(db) == await conn.run_sync(_alembic_revision) == head_revision()
    empty = connect(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    assert await current_revision(empty) is None
    await empty.close()
