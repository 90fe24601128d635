"""What MAS's writer stores in one trip (ums.db.onetrip) is what SQLAlchemy would have
stored: a time given at +09:00 reads back as the same instant, flags as a list, an
absent column as its server default, a sender's customer matched, and the body
found by search — on both databases."""

from datetime import datetime, timedelta, timezone

from sqlalchemy import insert

from ums.db.models import contacts
from ums.store import mailbox, web

SEOUL = timezone(timedelta(hours=9))
RAW = "Message-ID: <one-trip@customer.example>\r\nSubject: 연회비 문의\r\n\r\n카드연회비 환불을 요청합니다\r\n".encode()


async def test_a_batch_stored_in_one_trip_reads_back_as_written(db):
    at = datetime(2026, 12, 3, 0, 30, tzinfo=SEOUL)  # 15:30 UTC the day before
    async with db.begin() as conn:
        await conn.execute(insert(contacts).values(name="Kim", email="kim@customer.example"))
        box = await mailbox.ensure(conn, "support@ums.local", at)
        row = {"mailbox_id": box["id"], "media": "email", "classification": "reply",
               "sender": "kim@customer.example", "recipient": "support@ums.local", "subject": "연회비 문의",
               "message_id": None, "size": len(RAW), "raw": RAW, "contact_id": None,
               "match_contact": "kim@customer.example", "delivery_id": None, "pages": None, "duration": None,
               "received_at": at, "defects": None}
        await mailbox.store_messages(conn, [{**row, "flags": ["\\Seen"], "folder": "INBOX"},
                                            {**row, "flags": None, "folder": "Archive"}])
    async with db.connect() as conn:
        stored = sorted(await mailbox.messages(conn, box["id"]), key=lambda entry: entry["folder"])
        assert [entry["folder"] for entry in stored] == ["Archive", "INBOX"]
        assert stored[1]["flags"] == ["\\Seen"] and stored[0]["flags"] is None
        assert all(entry["received_at"] == at for entry in stored)
        assert stored[0]["received_at"].utcoffset() is not None
        assert stored[0]["message_id"] == "<one-trip@customer.example>"
        assert stored[0]["body_id"] == stored[1]["body_id"]
        assert stored[0]["contact_id"] is not None
        assert (await mailbox.message(conn, stored[1]["id"]))["raw"] == RAW
        rows, _ = await web.inbox_page(conn, None, web.InboxQuery(search="환불을", sort=web.RELEVANCE))
        assert sorted(r["id"] for r in rows) == sorted(entry["id"] for entry in stored)
