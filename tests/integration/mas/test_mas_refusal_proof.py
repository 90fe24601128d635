"""Issue #14, part 4, over real SMTP: a refusal acts at once only when it
provably comes from the customer — it answers a message UMS sent to that
address (In-Reply-To/References naming the sent Message-ID) or uses the
per-delivery token. A forged one (envelope ``attacker@evil.example``,
``From: victim@bigcustomer.example``, subject 수신거부) suppresses nobody:
MAS logs it and asks the victim to confirm with a transactional mail through
PASS; answering that mail suppresses them (advertising, every channel).
"""

from __future__ import annotations

import logging
from email.header import decode_header, make_header

import aiosmtplib
from sqlalchemy import select

from tests.helpers import eventually
from tests.integration.mas.conftest import customer, finished, queue, send_to_mas as send, sent_to
from tests.unit.mas import mas_samples as samples
from ums.db.models import deliveries as deliveries_table
from ums.store import mailbox, suppression

VICTIM = "victim@bigcustomer.example"
ATTACKER = "attacker@evil.example"


async def confirmations(suite, address: str) -> list[dict]:
    async with suite.ctx.db.connect() as conn:
        rows = await conn.execute(select(deliveries_table).where(
            deliveries_table.c.recipient == address, deliveries_table.c.template_name == "mas-refusal-confirm"))
        return [dict(row._mapping) for row in rows]


async def suppressed(suite) -> dict[tuple[str, str], str]:
    async with suite.ctx.db.connect() as conn:
        return {(e["channel"], e["address"]): e["scope"] for e in await suppression.entries(conn)}


def forged(subject: str = "수신거부", **headers) -> bytes:
    return samples.text_message(f"Victim <{VICTIM}>", "news@ums.local", subject, "광고 보내지 마세요\n", **headers)


async def test_a_forged_refusal_suppresses_nobody_and_the_victim_is_asked_to_confirm(
        mas_with_pass, relay_sink, caplog):
    caplog.set_level(logging.INFO, logger="ums.mas")
    suite = mas_with_pass
    victim = await customer(suite, VICTIM, fax="+82 31 555 0100")
    bystander = await customer(suite, "other@bigcustomer.example")
    other = await finished(suite, await queue(suite, "email", "other@bigcustomer.example", "offer", "advertising",
                                              bystander))

    await send(suite, forged(), ATTACKER, ["news@ums.local"])
    # naming a real Message-ID — of a message sent to someone else — proves nothing either
    await send(suite, forged("Re: 광고 수신거부", In_Reply_To=other["message_id"]), ATTACKER, ["news@ums.local"])
    assert await suppressed(suite) == {}
    warnings = [r for r in caplog.records if "unproven refusal" in r.getMessage()]
    assert warnings and warnings[0].__dict__["from"] == VICTIM and warnings[0].envelope_from == ATTACKER
    async with suite.ctx.db.connect() as conn:
        box = await mailbox.by_address(conn, "news@ums.local")
        stored = await mailbox.messages(conn, box["id"])
    assert {(row["classification"], row["folder"]) for row in stored} == {("refusal", "Refusals")}

    # one confirmation request, however many forged refusals; transactional, through PASS
    [pending] = await confirmations(suite, VICTIM)
    assert (pending["kind"], pending["contact_id"]) == ("transactional", victim)
    confirmation = await finished(suite, pending["id"])
    assert confirmation["state"] == "sent"
    [asked] = sent_to(relay_sink, VICTIM)
    assert str(make_header(decode_header(asked["Subject"]))).startswith("광고 수신거부 확인 요청")
    assert asked["List-Unsubscribe"] and asked["Message-ID"] == pending["message_id"]

    # a forged refusal from an address that is no customer's asks nobody
    await send(suite, samples.text_message("stranger@elsewhere.example", "news@ums.local", "unsubscribe", ""),
               ATTACKER, ["news@ums.local"])
    assert await confirmations(suite, "stranger@elsewhere.example") == []

    # the victim answers the confirmation: that is a reply to a message UMS sent them
    answer = samples.text_message(VICTIM, "news@ums.local", "Re: 광고 수신거부 확인 요청", "네, 제가 요청했습니다.\n",
                                  In_Reply_To=asked["Message-ID"])
    await send(suite, answer, VICTIM, ["news@ums.local"])
    assert await suppressed(suite) == {("email", VICTIM): "advertising", ("fax", "+82315550100"): "advertising"}
    async with suite.ctx.db.connect() as conn:
        [entry] = [e for e in await suppression.entries(conn, "email")]
    assert (entry["reason"], entry["source"]) == ("refusal", "mas:reply")


async def test_a_reply_to_a_mailing_and_the_unsubscribe_token_act_at_once(mas_with_pass, relay_sink):
    suite = mas_with_pass
    victim = await customer(suite, VICTIM)
    offer = await finished(suite, await queue(suite, "email", VICTIM, "offer", "advertising", victim))
    [mailing] = sent_to(relay_sink, VICTIM)

    # References (not In-Reply-To) naming the mailing, among other ids, also proves it
    references = f"<older@customer.example> {mailing['Message-ID']}"
    await send(suite, forged("Re: 수신거부", References=references), VICTIM, ["news@ums.local"])
    assert await suppressed(suite) == {("email", VICTIM): "advertising"}
    assert await confirmations(suite, VICTIM) == []

    # the List-Unsubscribe mailto address carries the per-delivery token
    second = await customer(suite, "second@bigcustomer.example")
    sent = await finished(suite, await queue(suite, "email", "second@bigcustomer.example", "offer", "advertising",
                                             second))
    await send(suite, samples.text_message(f"Someone <{ATTACKER}>", "x", "unsubscribe", ""), ATTACKER,
               [f"unsubscribe+{sent['token']}@ums.local"])

    async def both():
        return len(await suppressed(suite)) == 2

    await eventually(both)
    assert offer["state"] == "sent"
    # each entry records what proved it
    async with suite.ctx.db.connect() as conn:
        evidence = {e["address"]: e["evidence"] for e in await suppression.entries(conn, "email")}
    assert evidence == {VICTIM: f"reply to {mailing['Message-ID']}",
                        "second@bigcustomer.example": f"token of delivery {sent['id']}"}


async def test_a_confirmation_whose_transaction_failed_is_asked_again(mas, monkeypatch):
    from sqlalchemy.exc import OperationalError

    await customer(mas, VICTIM)
    committer = mas.services["mas"].handler.committer
    store_rows = committer.flush

    async def database_lost(conn, rows):
        raise OperationalError("INSERT …", {}, ConnectionResetError("database went away"))

    monkeypatch.setattr(committer, "flush", database_lost)
    try:
        await send(mas, forged(), ATTACKER, ["news@ums.local"])
        raise AssertionError("the message should have been deferred")
    except aiosmtplib.SMTPDataError as deferred:
        assert deferred.code == 451
    assert await confirmations(mas, VICTIM) == []  # rolled back with the message

    monkeypatch.setattr(committer, "flush", store_rows)
    await send(mas, forged(), ATTACKER, ["news@ums.local"])  # the sender retries
    await send(mas, forged(), ATTACKER, ["news@ums.local"])
    assert len(await confirmations(mas, VICTIM)) == 1 and await suppressed(mas) == {}
    async with mas.ctx.db.connect() as conn:  # filed into the mailbox the failed transaction had created
        box = await mailbox.by_address(conn, "news@ums.local")
        assert box is not None and len(await mailbox.messages(conn, box["id"])) == 2
