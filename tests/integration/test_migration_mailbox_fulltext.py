"""Migration 0010: messages stored before it are in the full-text index — found
by a word of their body (through the trigram index) and now of their subject —
and those carrying a fax or PDF wait to be read; the downgrade drops only
what it added, and the index comes back with the upgrade."""

from sqlalchemy import text

from ums.db.migrate import downgrade, upgrade
from ums.store import mailbox, web

EMAIL = "Message-ID: <q@customer.example>\r\nSubject: 카드연회비 문의\r\n\r\n연회비 환불을 요청합니다\r\n".encode()
FAX = (b"Subject: Fax from +82 2 555 0100\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
       b"--b\r\nContent-Type: text/plain\r\n\r\nfax\r\n--b\r\nContent-Type: image/tiff\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\nSUkqAA==\r\n--b--\r\n")


async def found(db, query: str) -> list[int]:
    async with db.connect() as conn:
        rows, _ = await web.inbox_page(conn, None, web.InboxQuery(search=query, sort=web.RELEVANCE))
        return [row["id"] for row in rows]


async def test_stored_messages_are_indexed_and_their_documents_wait_to_be_read(db):
    await downgrade(db, "0009")
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO mailboxes (id, address, notify_channel) VALUES (1, 'a@ums.local', 'none')"))
        for number, (raw, media, searched) in enumerate(((EMAIL, "email", "연회비 환불을 요청합니다"),
                                                          (FAX, "fax", "fax")), start=1):
            await conn.execute(text("INSERT INTO message_bodies (id, sha256, size, raw, search_text) "
                                    "VALUES (:id, :sha, :size, :raw, :searched)"),
                               {"id": number, "sha": f"{number:064d}", "size": len(raw), "raw": raw,
                                "searched": searched})
            await conn.execute(text("INSERT INTO mailbox_messages (mailbox_id, folder, media, size, body_id) "
                                    "VALUES (1, 'INBOX', :media, :size, :id)"),
                               {"media": media, "size": len(raw), "id": number})
    await upgrade(db)
    assert await found(db, "환불을") == [1]
    assert await found(db, "카드연회비") == [1]  # the subject, searched now
    assert await found(db, "환불") == [1]
    async with db.connect() as conn:
        assert [body["id"] for body in await mailbox.pending_bodies(conn)] == [2]
    await downgrade(db, "0009")
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM mailbox_messages")) == 2
    await upgrade(db)
    assert await found(db, "요청합니다") == [1]
