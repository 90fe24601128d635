"""A reply or forward names a mailbox message in ``variables["attach_mailbox_message"]``:
the email PASS sends carries that fax's or voice mail's files, or the whole
original email as message/rfc822, to a real SMTP sink."""

import email
import email.policy
from datetime import datetime, timezone
from email.message import EmailMessage

from pass_support import pass_config
from tests.helpers import eventually
from ums.outbox import SendRequest, enqueue
from ums.store import deliveries
from ums.store import mailbox as mailbox_store
from ums.store import templates as template_store
from ums.clock import utcnow

TIFF = b"II*\x00" + bytes(range(256)) * 40
ORIGINAL_BODY = "원본 메일입니다. Original text.\n"


def fax_raw() -> bytes:
    message = EmailMessage()
    message["From"] = "FAX <fax@gateway.test>"
    message["To"] = "desk@bank.test"
    message["Subject"] = "Fax from 0212345678"
    message.set_content("fax received, 2 pages")
    message.add_attachment(TIFF, maintype="image", subtype="tiff", filename="팩스 0212345678.tif")
    return message.as_bytes()


def email_raw() -> bytes:
    message = EmailMessage()
    message["From"] = "customer@example.org"
    message["To"] = "desk@bank.test"
    message["Subject"] = "문의드립니다"
    message["Message-ID"] = "<original-1@example.org>"
    message.set_content(ORIGINAL_BODY)
    return message.as_bytes()


async def queue_with_original(db, media: str, raw: bytes, recipient: str, **extra) -> int:
    now = utcnow()
    async with db.begin() as conn:
        await template_store.save(conn, "respond", "email", now, kind="transactional",
                                  subject="{{ subject }}", body_text="{{ body_text }}")
        original = await mailbox_store.store_message(
            conn, media=media, sender="someone@example.org", recipient="desk@bank.test",
            subject="original", size=len(raw), raw=raw,
        )
        await enqueue(conn, SendRequest("email", recipient, template="respond", variables={
            "subject": f"Fwd: {media}", "body_text": "Please look at this.",
            "attach_mailbox_message": original, **extra,
        }), now)
    return original


def received_for(sink, recipient: str) -> EmailMessage:
    [data] = [data for rcpt, _, data in sink.handler.received if rcpt == recipient]
    return email.message_from_bytes(data, policy=email.policy.default)


async def test_forwarded_fax_carries_its_document_and_email_forward_the_original(
        tmp_path, sqlite_url, pass_db_sqlite, sink, start_suite):
    await start_suite(pass_config(tmp_path, sqlite_url, sink.port), ["pass"])
    await queue_with_original(pass_db_sqlite, "fax", fax_raw(), "boss@example.com")
    await queue_with_original(pass_db_sqlite, "email", email_raw(), "team@example.com",
                              in_reply_to="<original-1@example.org>")

    async def both_arrived():
        return {rcpt for rcpt, _, _ in sink.handler.received} == {"boss@example.com", "team@example.com"}

    await eventually(both_arrived, timeout=20, interval=0.1)

    fax_forward = received_for(sink, "boss@example.com")
    assert fax_forward.get_body(("plain",)).get_content().strip() == "Please look at this."
    [document] = list(fax_forward.iter_attachments())
    assert document.get_content_type() == "image/tiff"
    assert document.get_filename() == "팩스 0212345678.tif"
    assert document.get_content() == TIFF

    mail_forward = received_for(sink, "team@example.com")
    assert mail_forward["In-Reply-To"] == "<original-1@example.org>"
    [enclosed] = list(mail_forward.iter_attachments())
    assert enclosed.get_content_type() == "message/rfc822"
    original = enclosed.get_content()
    assert original["Message-ID"] == "<original-1@example.org>"
    assert original["Subject"] == "문의드립니다"
    assert original.get_content().replace("\r\n", "\n") == ORIGINAL_BODY  # as sent on the wire (CRLF)


async def test_attachment_that_no_longer_exists_fails_the_delivery_not_the_queue(
        tmp_path, sqlite_url, pass_db_sqlite, sink, start_suite):
    await start_suite(pass_config(tmp_path, sqlite_url, sink.port), ["pass"])
    now = utcnow()
    async with pass_db_sqlite.begin() as conn:
        await template_store.save(conn, "respond", "email", now, kind="transactional",
                                  subject="{{ subject }}", body_text="{{ body_text }}")
        missing = await enqueue(conn, SendRequest("email", "gone@example.com", template="respond",
                                                  variables={"subject": "x", "body_text": "y",
                                                             "attach_mailbox_message": 987654}), now)
        await enqueue(conn, SendRequest("email", "next@example.com", template="respond",
                                        variables={"subject": "x", "body_text": "y"}), now)
    await eventually(lambda: "next@example.com" in {r for r, _, _ in sink.handler.received}, timeout=20)

    async def failed():
        async with pass_db_sqlite.connect() as conn:
            row = await deliveries.get(conn, missing)
        return row["state"] == "failed" and "987654" in row["last_error"]

    await eventually(failed, timeout=20)
    assert "gone@example.com" not in {r for r, _, _ in sink.handler.received}
