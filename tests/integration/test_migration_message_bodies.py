"""Migration 0007: mailbox entries stored before it keep reading back exactly
as received, each distinct message now stored once; the downgrade gives every
entry its own copy back."""

from sqlalchemy import text

from ums.db import connect
from ums.db.migrate import downgrade, upgrade
from ums.store import mailbox

FIRST, SECOND = b"From: a@customer.example\r\nSubject: one\r\n\r\nfirst\r\n", b"Subject: two\r\n\r\n\xff\x00bytes\r\n"


async def test_existing_entries_are_moved_to_one_body_each(tmp_path):
    db = connect(f"sqlite+aiosqlite:///{tmp_path}/old.db")
    await upgrade(db, "0005")
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO mailboxes (address, notify_channel) VALUES ('a@ums.local', 'none')"))
        for recipient, raw in (("a@ums.local", FIRST), ("a+x@ums.local", FIRST), ("a@ums.local", SECOND)):
            await conn.execute(text("INSERT INTO mailbox_messages (mailbox_id, folder, media, recipient, size, raw)"
                                    " VALUES (1, 'INBOX', 'email', :recipient, :size, :raw)"),
                               {"recipient": recipient, "size": len(raw), "raw": raw})
    await upgrade(db)
    async with db.connect() as conn:
        read = [bytes((await mailbox.message(conn, entry_id))["raw"]) for entry_id in (1, 2, 3)]
        assert read == [FIRST, FIRST, SECOND]
        assert await mailbox.stored_bytes(conn) == len(FIRST) + len(SECOND)
        assert await conn.scalar(text("SELECT count(*) FROM message_bodies")) == 2

    await downgrade(db, "0005")
    async with db.connect() as conn:
        rows = (await conn.execute(text("SELECT raw FROM mailbox_messages ORDER BY id"))).all()
    assert [bytes(row[0]) for row in rows] == [FIRST, FIRST, SECOND]
    await db.close()
