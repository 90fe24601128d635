"""Must show 1 and 2: a real SMTP client on loopback sends what comes back to a bank."""

import aiosmtplib
import pytest

from tests.unit.mas import mas_samples as samples
from ums import outbox
from ums.store import contacts, deliveries, mailbox, rules, suppression

SITE_REPLIES = """require ["fileinto", "imap4flags"];
if header :contains "subject" ["Re:", "회신"] {
    addflag "\\\\Flagged";
    fileinto "Replies";
}
"""


async def send(client_factory, raw: bytes, mail_from: str, recipients: list[str]):
    async with client_factory() as client:
        return await client.sendmail(mail_from, recipients, raw)


async def rows_for(db, address):
    async with db.connect() as conn:
        box = await mailbox.by_address(conn, address)
        return await mailbox.messages(conn, box["id"]) if box else []


async def sent_delivery(db, recipient, now):
    async with db.begin() as conn:
        delivery_id = await outbox.enqueue(
            conn, outbox.SendRequest("email", recipient, template="monthly", kind="advertising",
                                     fallback=[{"channel": "fax", "recipient": "+82 2 555 0199"}]), now)
        return await deliveries.get(conn, delivery_id)


async def test_what_comes_back_lands_where_it_should(mas, smtp_client):
    db, now = mas.ctx.db, mas.ctx.clock()
    async with db.begin() as conn:
        customer = await contacts.create(conn, name="홍길동", email="hong@customer.example")
        await rules.save(conn, "replies", SITE_REPLIES, now)

    # a reply to a mailing, filed by the site rule and tied to the customer and the delivery
    sent = await sent_delivery(db, "hong@customer.example", now)
    await send(smtp_client, samples.reply("홍길동 <hong@customer.example>", "sales@bank.example",
                                          in_reply_to=sent["message_id"]),
               "hong@customer.example", ["sales@bank.example"])
    [row] = await rows_for(db, "sales@bank.example")
    assert (row["folder"], row["classification"], row["flags"]) == ("Replies", "reply", ["\\Flagged"])
    assert row["contact_id"] == customer and row["delivery_id"] == sent["id"]

    # an EUC-KR refusal in an RFC 2047 subject, answering a mailing sent to that address:
    # the sender is suppressed at once, for advertising
    mailing = await sent_delivery(db, "kim@customer.example", now)
    await send(smtp_client, samples.euc_kr_refusal("kim@customer.example", "news@ums.local",
                                                   in_reply_to=mailing["message_id"]),
               "kim@customer.example", ["news@ums.local"])
    [row] = await rows_for(db, "news@ums.local")
    assert row["classification"] == "refusal" and row["folder"] == "Refusals"
    assert row["subject"] == "광고 수신거부 합니다" and row["delivery_id"] == mailing["id"]
    async with db.connect() as conn:
        assert await suppression.is_suppressed(conn, "email", "kim@customer.example")
        [entry] = await suppression.entries(conn, "email")
    assert (entry["reason"], entry["source"], entry["scope"]) == ("refusal", "mas:reply", "advertising")

    # a DSN for a 5.1.1 failure of a delivery PASS sent, to its VERP return path
    bounced = await sent_delivery(db, "gone@customer.example", now)
    await send(smtp_client, samples.dsn("gone@customer.example", bounced["message_id"]),
               "", [f"bounce+{bounced['token']}@ums.local"])
    async with db.connect() as conn:
        after = await deliveries.get(conn, bounced["id"])
        assert await suppression.is_suppressed(conn, "email", "gone@customer.example")
        queued = [d for d in await pending(conn) if d["recipient"] == "+82 2 555 0199"]
    assert after["bounced_at"] is not None and after["last_code"] == "5.1.1"
    assert len(queued) == 1 and queued[0]["channel"] == "fax"  # the fallback channel is tried next
    [row] = await rows_for(db, "bounce@ums.local")
    assert (row["classification"], row["folder"], row["delivery_id"]) == ("bounce", "Bounces", bounced["id"])

    # fax and voice mail from the gateways
    await send(smtp_client, samples.fax_mail("fax@bank.example", pages=3), "fax-gateway@fax.bank.example",
               ["fax@bank.example"])
    await send(smtp_client, samples.voice_mail("voice@bank.example", seconds=12.5),
               "voicemail@pbx.bank.example", ["voice@bank.example"])
    [fax] = await rows_for(db, "fax@bank.example")
    [voice] = await rows_for(db, "voice@bank.example")
    assert (fax["media"], fax["pages"]) == ("fax", 3)
    assert voice["media"] == "voice" and voice["duration"] == pytest.approx(12.5, abs=0.01)


async def pending(conn):
    from sqlalchemy import select

    from ums.db.models import deliveries as table

    return [dict(r._mapping) for r in await conn.execute(select(table))]


async def test_refuses_relay_and_oversized_and_serves_on(mas, smtp_client):
    async with smtp_client() as client:
        await client.ehlo()
        await client.mail("someone@outside.example")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await client.rcpt("victim@elsewhere.example")
        assert refused.value.code == 550 and "5.7.1" in refused.value.message
        await client.rset()
        big = samples.text_message("a@customer.example", "sales@bank.example", "big", "x" * 600_000)
        with pytest.raises(aiosmtplib.SMTPResponseException) as oversized:
            await client.sendmail("a@customer.example", ["sales@bank.example"], big)
        assert oversized.value.code == 552
    # the server still serves the next client
    await send(smtp_client, samples.reply("a@customer.example", "sales@bank.example"),
               "a@customer.example", ["sales@bank.example"])
    assert len(await rows_for(mas.ctx.db, "sales@bank.example")) == 1
