"""Must show 1, end to end: a customer who answers a campaign with an EUC-KR
``수신거부`` reply over SMTP is suppressed, and PASS skips them on the next
campaign. MAS and PASS run together; PASS relays into a loopback SMTP sink."""

from __future__ import annotations

import email
from datetime import timedelta
from email.utils import getaddresses

import aiosmtplib
import pytest
from sqlalchemy import select

from tests.helpers import eventually, split_address
from tests.integration.pass_.pass_support import Sink
from tests.unit.mas import mas_samples as samples
from ums import campaigns
from ums.db.models import deliveries
from ums.store import addressbooks, mailbox, suppression

AUDIENCE = ("stay@customer.example", "leave@customer.example")


def recipients(sink: Sink) -> list[str]:
    return sorted(rcpt for rcpt, _, _ in sink.handler.received)


def message_to(sink: Sink, address: str) -> email.message.Message:
    return email.message_from_bytes(next(data for rcpt, _, data in sink.handler.received if rcpt == address))


@pytest.fixture
async def mas_and_pass(mas_with_pass):
    """MAS and PASS (relaying into ``relay_sink``) with an address book "Offers"."""
    suite = mas_with_pass
    now = suite.ctx.clock()
    async with suite.ctx.db.begin() as conn:
        book = await addressbooks.ensure_book(conn, "Offers")
        for address in AUDIENCE:
            contact = await addressbooks.save_contact(conn, {"name": address, "email": address}, now)
            await addressbooks.add_to_book(conn, book, contact)
            # night-time consent too, so quiet hours never hold the test's mail back
            await addressbooks.record_consent(conn, contact, True, "web form", now - timedelta(days=1), night_time=True)
    return suite


async def run_campaign(suite, name: str) -> int:
    spec = campaigns.from_dict({
        "name": name, "kind": "advertising", "channel": "email", "audience": {"books": ["Offers"]},
        "template": {"name": name, "subject": "이달의 혜택", "body_text": "안녕하세요, 혜택을 안내드립니다.",
                     "body_html": "<p>안녕하세요</p>", "sender_name": "UMS은행", "sender_contact": "1588-0000"},
    })
    async with suite.ctx.db.begin() as conn:
        campaign_id = await campaigns.create(conn, spec, suite.ctx.clock())
        await campaigns.schedule(conn, campaign_id, at=None, now=suite.ctx.clock())

    async def finished():
        async with suite.ctx.db.connect() as conn:
            return (await campaigns.progress(conn, campaign_id)).state == "completed"

    await eventually(finished, timeout=30, interval=0.2)
    return campaign_id


async def delivery_states(suite, campaign_id: int) -> dict[str, str]:
    async with suite.ctx.db.connect() as conn:
        rows = await conn.execute(select(deliveries.c.recipient, deliveries.c.state)
                                  .where(deliveries.c.campaign_id == campaign_id))
        return dict(rows.all())


async def test_a_korean_refusal_reply_makes_the_next_campaign_skip_the_customer(mas_and_pass, relay_sink):
    relay = relay_sink
    suite = mas_and_pass
    first = await run_campaign(suite, "offer-1")
    assert recipients(relay) == sorted(AUDIENCE)
    assert await delivery_states(suite, first) == {address: "sent" for address in AUDIENCE}

    # the customer answers the mail they got, to its reply address, in EUC-KR
    offer = message_to(relay, "leave@customer.example")
    reply_to = getaddresses([offer.get("Reply-To") or offer["From"]])[0][1]
    answer = samples.text_message("고객 <leave@customer.example>", reply_to, "Re: 광고 수신거부 합니다",
                                  "더 이상 보내지 마세요.\n", charset="euc-kr", In_Reply_To=offer["Message-ID"])
    assert b"=?euc-kr?" in answer.lower()
    host, port = split_address(suite.services["mas"].address)
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False) as client:
        _, reply = await client.sendmail("leave@customer.example", [reply_to], answer)
    assert reply.startswith("2.0.0") or "accepted" in reply

    async with suite.ctx.db.connect() as conn:
        assert await suppression.is_suppressed(conn, "email", "leave@customer.example")
        assert not await suppression.is_suppressed(conn, "email", "stay@customer.example")
        [stored] = await mailbox.messages(conn, (await mailbox.by_address(conn, reply_to))["id"])
    assert stored["classification"] == "refusal"
    assert stored["contact_id"] is not None and stored["delivery_id"] is not None

    relay.handler.received.clear()
    second = await run_campaign(suite, "offer-2")
    assert recipients(relay) == ["stay@customer.example"]
    assert await delivery_states(suite, second) == {
        "stay@customer.example": "sent", "leave@customer.example": "suppressed"}
