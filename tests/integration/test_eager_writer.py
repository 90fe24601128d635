"""An eager SQLite writer (PASS's claims of urgent alerts) gets the write lock as
soon as another writer lets it go, and still gives up with "database is locked"
after its limit when the lock is never let go."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from ums.db import connect, writer
from ums.db.migrate import upgrade


def count_mailboxes(conn) -> int:
    conn.execute(text("INSERT INTO mailboxes (address, notify_channel) VALUES ('eager@ums.local', 'none')"))
    return conn.execute(text("SELECT count(*) FROM mailboxes")).scalar()


@pytest.fixture
async def sqlite_file(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/ums.db"
    db = connect(url)
    await upgrade(db)
    yield db, tmp_path / "ums.db"
    await db.close()


async def test_an_eager_writer_waits_for_the_lock_and_writes_when_it_is_free(sqlite_file):
    db, path = sqlite_file
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    eager = writer.for_database(db, "eager", eager=True)
    try:
        batch = asyncio.create_task(eager.run(count_mailboxes))
        await asyncio.sleep(0.3)
        assert not batch.done()  # it waits while the other writer holds the lock
        other.execute("COMMIT")
        assert await asyncio.wait_for(batch, 10) == 1
    finally:
        other.close()
        await eager.close()


async def test_an_eager_writer_gives_up_when_the_lock_is_never_let_go(sqlite_file, monkeypatch):
    db, path = sqlite_file
    monkeypatch.setattr(writer, "EAGER_LOCK_SECONDS", 0.3)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    eager = writer.for_database(db, "eager", eager=True)
    try:
        with pytest.raises(OperationalError, match="locked"):
            await asyncio.wait_for(eager.run(count_mailboxes), 10)
    finally:
        other.execute("ROLLBACK")
        other.close()
        await eager.close()
