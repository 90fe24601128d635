"""Bounces in other formats, the temporary-bounce score, List-Unsubscribe mail,
the one-click refusal core call, and new-mail notices through the outbox."""

from sqlalchemy import select

from tests.unit.mas import mas_samples as samples
from ums import outbox, refusal
from ums.db.models import deliveries as deliveries_table
from ums.store import bounces, deliveries, mailbox, suppression


async def send(smtp_client, raw, mail_from, recipients):
    async with smtp_client() as client:
        await client.sendmail(mail_from, recipients, raw)


async def new_delivery(db, recipient, now):
    async with db.begin() as conn:
        return await deliveries.get(conn, await outbox.enqueue(conn, outbox.SendRequest("email", recipient), now))


async def test_qmail_bounce_matched_by_message_id(mas, smtp_client):
    db, now = mas.ctx.db, mas.ctx.clock()
    sent = await new_delivery(db, "nobody@customer.example", now)
    await send(smtp_client, samples.qmail_bounce("nobody@customer.example", sent["message_id"]),
               "", ["bounce@ums.local"])
    async with db.connect() as conn:
        assert await suppression.scope_of(conn, "email", "nobody@customer.example") == "all"  # a bounce stops all
        assert (await deliveries.get(conn, sent["id"]))["bounced_at"] is not None


async def test_temporary_bounces_count_up_to_the_threshold(mas, smtp_client):
    db, now = mas.ctx.db, mas.ctx.clock()
    for attempt in range(3):  # mas.bounce_threshold defaults to 3
        sent = await new_delivery(db, "full@customer.example", now)
        await send(smtp_client, samples.dsn("full@customer.example", sent["message_id"], status="4.2.2"),
                   "", [f"bounce+{sent['token']}@ums.local"])
        async with db.connect() as conn:
            assert await bounces.score_of(conn, "email", "full@customer.example") == attempt + 1
            assert await suppression.is_suppressed(conn, "email", "full@customer.example") == (attempt == 2)
            assert (await deliveries.get(conn, sent["id"]))["bounced_at"] is None


async def test_list_unsubscribe_mailto_and_one_click_core_call(mas, smtp_client):
    db, now = mas.ctx.db, mas.ctx.clock()
    first = await new_delivery(db, "lee@customer.example", now)
    await send(smtp_client, samples.text_message("lee@customer.example", "x", "unsubscribe", ""),
               "lee@customer.example", [f"unsubscribe+{first['token']}@ums.local"])
    second = await new_delivery(db, "park@customer.example", now)
    async with db.begin() as conn:
        assert await refusal.refuse_by_token(conn, "no-such-token", now, source="one-click") is None
        result = await refusal.refuse_by_token(conn, second["token"], now, source="one-click")
    assert result.added and result.delivery_id == second["id"]
    async with db.connect() as conn:
        entries = {e["address"]: e for e in await suppression.entries(conn, "email")}
    assert entries["lee@customer.example"]["source"] == "mas:list-unsubscribe"
    assert entries["park@customer.example"]["source"] == "one-click"
    assert entries["lee@customer.example"]["reason"] == "unsubscribe"
    # unsubscribing is a refusal of advertising, by mail or by the one-click link
    assert entries["lee@customer.example"]["scope"] == entries["park@customer.example"]["scope"] == "advertising"


async def test_new_mail_notifies_the_owner_through_the_outbox(mas, smtp_client):
    db, now = mas.ctx.db, mas.ctx.clock()
    async with db.begin() as conn:
        await mailbox.create(conn, "vip@bank.example", now, notify_channel="email",
                             notify_address="manager@bank.example")
    await send(smtp_client, samples.voice_mail("vip@bank.example", seconds=3), "pbx@bank.example",
               ["vip@bank.example"])
    async with db.connect() as conn:
        queued = [dict(r._mapping) for r in await conn.execute(
            select(deliveries_table).where(deliveries_table.c.recipient == "manager@bank.example"))]
    [notice] = queued
    assert notice["kind"] == "transactional" and notice["template_name"] == "mas-new-message"
    assert notice["variables"]["media"] == "voice" and notice["variables"]["mailbox"] == "vip@bank.example"
