"""Issue #14, bounces, over real SMTP: a bounce of a delivery PASS really sent
(to its ``bounce+TOKEN`` return path, naming its Message-ID). A Gmail 5.7.1
spam block is a block of our server, not a bad address: it suppresses nobody
and is logged as a WARNING with the remote's reason; a 5.1.1 suppresses.
Temporary-bounce scores go stale (``[mas] bounce_stale_after``) and
``suppress remove`` forgets them."""

from __future__ import annotations

import logging
from datetime import timedelta

from tests.integration.mas.conftest import customer, finished, queue, send_to_mas as send, sent_to
from tests.unit.mas import mas_samples as samples
from ums import outbox
from ums.bounces import Bounce, Failure
from ums.clock import utcnow
from ums.store import bounces, deliveries, mailbox, suppression

from mas import feedback

GMAIL_SPAM_BLOCK = (
    "550-5.7.1 [203.0.113.5 12] Our system has detected that this message is\r\n"
    " 550-5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,\r\n"
    " 550-5.7.1 this message has been blocked. Please visit\r\n"
    " 550 5.7.1 https://support.google.com/mail/?p=UnsolicitedMessageError - gsmtp"
)


def bounce_of(sent, recipient: str, status: str, diagnostic: str) -> bytes:
    """The DSN a receiving MTA returns for a message PASS sent (its headers quoted),
    marked ``Auto-Submitted`` as RFC 3834 asks."""
    raw = b"Auto-Submitted: auto-replied\r\n" + samples.dsn(recipient, sent["Message-ID"], status=status)
    usual = f"550 {status} <{recipient}>: Recipient address rejected: User unknown".encode()
    return raw.replace(b"Status: 5.1.1", b"Status: 5.0.0").replace(usual, diagnostic.encode())


async def test_a_spam_block_suppresses_nobody_and_an_unknown_user_does(mas_with_pass, relay_sink, caplog):
    caplog.set_level(logging.INFO, logger="ums.mas")
    suite = mas_with_pass
    kim, lee = "kim@gmail.example", "lee@customer.example"
    deliveries_sent = {}
    for address in (kim, lee):
        contact = await customer(suite, address)
        deliveries_sent[address] = await finished(
            suite, await queue(suite, "email", address, "deposit-alert", "transactional", contact))
        assert deliveries_sent[address]["state"] == "sent"
    [to_kim], [to_lee] = sent_to(relay_sink, kim), sent_to(relay_sink, lee)
    assert to_kim["Message-ID"] == deliveries_sent[kim]["message_id"]

    await send(suite, bounce_of(to_kim, kim, "5.7.1", GMAIL_SPAM_BLOCK), "",
               [f"bounce+{deliveries_sent[kim]['token']}@ums.local"])
    await send(suite, bounce_of(to_lee, lee, "5.1.1",
                                "550 5.1.1 The email account that you tried to reach does not exist"), "",
               [f"bounce+{deliveries_sent[lee]['token']}@ums.local"])

    async with suite.ctx.db.connect() as conn:
        assert await suppression.scope_of(conn, "email", kim) is None
        assert (await deliveries.get(conn, deliveries_sent[kim]["id"]))["bounced_at"] is None
        assert await bounces.score_of(conn, "email", kim) == 0
        assert await suppression.scope_of(conn, "email", lee) == "all"
        assert (await deliveries.get(conn, deliveries_sent[lee]["id"]))["last_code"] == "5.1.1"
        box = await mailbox.by_address(conn, "bounce@ums.local")
        filed = await mailbox.messages(conn, box["id"])
    [warning] = [r for r in caplog.records if "blocked our mail" in r.getMessage()]
    assert warning.levelno == logging.WARNING and warning.status == "5.7.1"
    assert "likely unsolicited mail" in warning.reason
    # filed as bounces although Auto-Submitted; a real out-of-office still goes to Auto-Replies
    assert [(row["classification"], row["folder"]) for row in filed] == [("bounce", "Bounces")] * 2
    await send(suite, samples.text_message(kim, "bounce@ums.local", "Out of Office", "Back on Monday.\n",
                                           Auto_Submitted="auto-replied"), kim, ["bounce@ums.local"])
    async with suite.ctx.db.connect() as conn:
        folders = [row["folder"] for row in await mailbox.messages(conn, box["id"])]
    assert sorted(folders) == ["Auto-Replies", "Bounces", "Bounces"]


async def test_temporary_scores_go_stale_and_suppress_remove_resets_them(db):
    now = utcnow()
    week = timedelta(days=7)
    async with db.begin() as conn:
        sent = await deliveries.get(conn, await outbox.enqueue(conn, outbox.SendRequest("email", "full@x.example"),
                                                               now))

    async def temporary(at):
        bounce = Bounce([Failure("full@x.example", "4.2.2", "temporary", "452 4.2.2 mailbox full")],
                        original_message_id=sent["message_id"])
        async with db.begin() as conn:
            await feedback.apply_bounce(conn, bounce, None, at, threshold=3, stale_after=week)
            return await bounces.score_of(conn, "email", "full@x.example")

    assert await temporary(now) == 1
    assert await temporary(now + timedelta(days=6)) == 2
    # more than a week after the last one: the count starts again
    assert await temporary(now + timedelta(days=14)) == 1
    assert await temporary(now + timedelta(days=15)) == 2
    assert await temporary(now + timedelta(days=16)) == 3
    async with db.begin() as conn:
        assert await suppression.scope_of(conn, "email", "full@x.example") == "all"
        assert await suppression.remove(conn, "email", "full@x.example")
        assert await bounces.score_of(conn, "email", "full@x.example") == 0
    # taken off the list, one more temporary bounce does not suppress it again
    assert await temporary(now + timedelta(days=17)) == 1
    async with db.connect() as conn:
        assert await suppression.scope_of(conn, "email", "full@x.example") is None
