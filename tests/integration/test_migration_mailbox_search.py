"""Migration 0008: messages stored before it are indexed by it — found by a
search of their body text and grouped into their conversations — and the
downgrade drops only what it added."""

from sqlalchemy import text

from ums.db.migrate import downgrade, upgrade
from ums.store import mailbox, web

QUESTION = "Message-ID: <q@customer.example>\r\nSubject: card\r\n\r\n연회비 환불을 요청합니다\r\n".encode()
ANSWER = b"Message-ID: <a@ums.local>\r\nIn-Reply-To: <q@customer.example>\r\nSubject: Re: card\r\n\r\nok\r\n"


async def test_stored_messages_are_indexed_for_search_and_threads(db):
    await downgrade(db, "0007")
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO mailboxes (id, address, notify_channel) VALUES (1, 'a@ums.local', 'none')"))
        for number, raw in enumerate((QUESTION, ANSWER), start=1):
            await conn.execute(text("INSERT INTO message_bodies (id, sha256, size, raw) VALUES (:id, :sha, :size, :raw)"),
                               {"id": number, "sha": f"{number:064d}", "size": len(raw), "raw": raw})
            await conn.execute(text("INSERT INTO mailbox_messages (mailbox_id, folder, media, size, body_id, "
                                    "message_id) VALUES (1, 'INBOX', 'email', :size, :id, :mid)"),
                               {"size": len(raw), "id": number, "mid": "<q@customer.example>" if number == 1 else None})
    await upgrade(db)
    async with db.connect() as conn:
        found, total = await web.inbox_page(conn, None, web.InboxQuery(search="환불"))
        assert total == 1 and found[0]["id"] == 1
        keys = [row["thread_key"] for row in await mailbox.messages(conn)]
        assert keys == ["<q@customer.example>", "<q@customer.example>"]
    await downgrade(db, "0007")
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM mailbox_messages")) == 2
    await upgrade(db)
