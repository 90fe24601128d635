"""Issue #14, part 3, over real SMTP: a refusal is a refusal of ADVERTISING.

A customer's ``수신거부`` reply to a mailing stops advertising to them on every
channel (their email, fax and phone numbers get entries of scope
``advertising``) while PASS still sends their transactional notices — the
large-deposit alert that such a reply used to suppress. Bounces and operator
entries keep stopping everything. Keywords match whole words ("I never
unsubscribed…" is no refusal, a bare ``STOP`` is), and mail to an
``unsubscribe+<unknown token>`` address suppresses nobody and is refused.
"""

from __future__ import annotations

import logging

import aiosmtplib
import pytest

from tests.integration.mas.conftest import customer, finished, queue, send_to_mas as send, sent_to
from tests.unit.mas import mas_samples as samples
from ums import outbox
from ums.addresses import normalize
from ums.store import deliveries, mailbox, suppression

KIM = "kim@customer.example"
KIM_FAX, KIM_PHONE = "+82 2 555 0199", "010-1234-5678"


async def entries(suite) -> dict[tuple[str, str], dict]:
    async with suite.ctx.db.connect() as conn:
        return {(e["channel"], e["address"]): e for e in await suppression.entries(conn)}


async def test_a_refusal_stops_advertising_everywhere_and_leaves_the_deposit_alert_alone(mas_with_pass, relay_sink):
    suite = mas_with_pass
    kim = await customer(suite, KIM, fax=KIM_FAX, phone=KIM_PHONE)
    offer = await finished(suite, await queue(suite, "email", KIM, "offer", "advertising", kim))
    assert offer["state"] == "sent"
    [mailing] = sent_to(relay_sink, KIM)

    # the customer answers the mailing: 수신거부
    await send(suite, samples.text_message(KIM, mailing["From"], "Re: 수신거부", "보내지 마세요\n",
                                           In_Reply_To=mailing["Message-ID"]), KIM, ["news@ums.local"])
    found = await entries(suite)
    assert {key: (e["reason"], e["scope"]) for key, e in found.items()} == {
        ("email", KIM): ("refusal", "advertising"),
        ("fax", normalize("fax", KIM_FAX)): ("refusal", "advertising"),      # every channel of the customer
        ("voice", normalize("voice", KIM_PHONE)): ("refusal", "advertising"),
    }

    # PASS: the large-deposit alert still goes, advertising no longer does — on any channel
    alert = await finished(suite, await queue(suite, "email", KIM, "deposit-alert", "transactional", kim))
    again = await finished(suite, await queue(suite, "email", KIM, "offer", "advertising", kim))
    fax_offer = await finished(suite, await queue(suite, "fax", KIM_FAX, "offer", "advertising", kim))
    assert alert["state"] == "sent" and alert["last_error"] is None
    assert (again["state"], again["last_error"]) == ("suppressed", "address refused advertising")
    assert fax_offer["state"] == "suppressed"
    assert [m["Subject"] for m in sent_to(relay_sink, KIM)][-1] == "deposit-alert for you"
    assert len(sent_to(relay_sink, KIM)) == 2


async def test_bounces_and_operator_entries_still_stop_everything(mas_with_pass, relay_sink):
    suite = mas_with_pass
    lee = await customer(suite, "lee@customer.example")
    async with suite.ctx.db.begin() as conn:
        assert await suppression.add(conn, "email", "lee@customer.example", "manual", source="test")
    alert = await finished(suite, await queue(suite, "email", "lee@customer.example", "deposit-alert",
                                              "transactional", lee))
    assert (alert["state"], alert["last_error"]) == ("suppressed", "address is on the suppression list")

    # an advertising-only entry widens to "all" when the address then bounces
    park = await customer(suite, "park@customer.example")
    async with suite.ctx.db.begin() as conn:
        assert await suppression.add(conn, "email", "park@customer.example", "refusal", scope="advertising")
        assert not await suppression.add(conn, "email", "park@customer.example", "refusal", scope="advertising")
    alert = await finished(suite, await queue(suite, "email", "park@customer.example", "deposit-alert",
                                              "transactional", park))
    assert alert["state"] == "sent"
    [notice] = sent_to(relay_sink, "park@customer.example")
    await send(suite, samples.dsn("park@customer.example", notice["Message-ID"]), "", [f"bounce@ums.local"])
    entry = (await entries(suite))[("email", "park@customer.example")]
    assert (entry["reason"], entry["scope"], entry["source"]) == ("bounce", "all", "mas:bounce")
    alert = await finished(suite, await queue(suite, "email", "park@customer.example", "deposit-alert",
                                              "transactional", park))
    assert alert["state"] == "suppressed"


async def test_keywords_match_whole_words(mas, smtp_client):
    db, now = mas.ctx.db, mas.ctx.clock()

    async def mailing_to(address):
        async with db.begin() as conn:
            return await deliveries.get(conn, await outbox.enqueue(
                conn, outbox.SendRequest("email", address, template="offer", kind="advertising"), now))

    async def answer(address, subject, body):
        sent = await mailing_to(address)
        async with smtp_client() as client:
            await client.sendmail(address, ["news@ums.local"], samples.text_message(
                address, "news@ums.local", subject, body, In_Reply_To=sent["message_id"]))

    await answer("never@customer.example", "Re: statements", "I never unsubscribed, why no statements?\n")
    await answer("card@customer.example", "Re: 카드", "Please stop my card, it was stolen.\n")
    await answer("stop@customer.example", "STOP", "\n")
    await answer("line@customer.example", "Re: 혜택 안내", "Stop.\n\n-- \nSent from my phone\n")
    async with db.connect() as conn:
        suppressed = {e["address"] for e in await suppression.entries(conn)}
        box = await mailbox.by_address(conn, "news@ums.local")
        kinds = {m["sender"]: m["classification"] for m in await mailbox.messages(conn, box["id"])}
    assert suppressed == {"stop@customer.example", "line@customer.example"}
    assert kinds == {"never@customer.example": "reply", "card@customer.example": "reply",
                     "stop@customer.example": "refusal", "line@customer.example": "refusal"}


async def test_an_unknown_unsubscribe_token_suppresses_nobody_and_is_refused(mas, smtp_client, caplog):
    caplog.set_level(logging.INFO, logger="ums.mas")
    db, now = mas.ctx.db, mas.ctx.clock()
    async with db.begin() as conn:
        real = await deliveries.get(conn, await outbox.enqueue(conn, outbox.SendRequest("email", KIM), now))
    message = samples.text_message(KIM, "unsubscribe@ums.local", "unsubscribe", "")
    async with smtp_client() as client:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await client.sendmail(KIM, ["unsubscribe+0000guessed0000@ums.local"], message)
        [error] = refused.value.recipients
        assert error.code == 550 and "nobody was unsubscribed" in error.message
        # with a known token beside it, the message goes to that one only
        _, replies = await client.sendmail(
            KIM, [f"unsubscribe+{real['token'][:-1]}x@ums.local", f"unsubscribe+{real['token'].upper()}@ums.local"],
            message)
    assert any("names no delivery" in r.getMessage() for r in caplog.records)
    async with db.connect() as conn:
        [entry] = await suppression.entries(conn)
        stored = await mailbox.messages(conn)
    assert (entry["address"], entry["reason"], entry["scope"]) == (KIM, "unsubscribe", "advertising")
    assert [row["delivery_id"] for row in stored] == [real["id"]]
