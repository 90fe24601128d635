"""Applying what recipients tell us: bounces and refusals, inside the caller's
transaction (the one that also stores the message, so both commit together).

A refusal acts at once only when it provably comes from the customer
(:func:`apply_refusal`): it answers — by In-Reply-To or References — a
message UMS sent to its From address (Message-IDs are unguessable), it
went to a per-delivery ``unsubscribe+<token>`` address, or its From domain
passes DMARC (:mod:`mas.authenticity`). Each records its evidence on the
suppression (``reply to <message-id>``, ``dkim=pass d=… aligned``…). Anything else — say
envelope ``attacker@evil.example`` with ``From: victim@bigcustomer.example``
and the subject ``수신거부`` — suppresses nobody: MAS logs it and, when the
From address is a customer's, asks that address to confirm with a
transactional mail through PASS (:func:`mas.notify.confirm_refusal`), at
most once a day per address (:class:`Confirmations`). Answering that mail is
a reply to a message UMS sent to the address, so it acts at once.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from ums import outbox, refusal
from ums.addresses import normalize
from ums.bounces import IGNORED, Bounce, Failure
from ums.store import bounces as store, deliveries

from . import notify
from ums.inbound import InboundMessage

log = logging.getLogger("ums.mas.feedback")

#: seconds before the same address is asked again to confirm a refusal
CONFIRM_EVERY = 86400.0
#: References entries looked at (a long thread names many messages)
MAX_REFERENCES = 10


class Confirmations:
    """Which addresses were asked to confirm a refusal lately (in this process),
    so forged refusals cannot mail-bomb a customer with confirmation requests.
    A request counts only once its delivery exists: one whose transaction
    rolled back (the sender is told 451 and retries) is asked again."""

    def __init__(self, every: float = CONFIRM_EVERY, size: int = 100_000):
        self.every, self.size = every, size
        self.asked: dict[str, tuple[float, int]] = {}  # address → (when, confirmation delivery id)

    async def asked_lately(self, conn: AsyncConnection, address: str) -> bool:
        entry = self.asked.get(address)
        if entry is None or time.monotonic() - entry[0] >= self.every:
            return False
        delivery = await deliveries.get(conn, entry[1])
        return bool(delivery) and delivery["recipient"] == address \
            and delivery["template_name"] == notify.CONFIRM_TEMPLATE

    def note(self, address: str, delivery_id: int) -> None:
        self.asked.pop(address, None)
        while len(self.asked) >= self.size:  # forget the oldest first
            self.asked.pop(next(iter(self.asked)))
        self.asked[address] = (time.monotonic(), delivery_id)


def referenced_ids(message: InboundMessage) -> list[str]:
    """The Message-IDs an answer names: In-Reply-To first, then References (newest first)."""
    in_reply_to = " ".join(message.header_values("in-reply-to")).split()
    references = " ".join(message.header_values("references")).split()
    return list(dict.fromkeys(in_reply_to + references[::-1]))[:MAX_REFERENCES]


async def delivery_answered(conn: AsyncConnection, message: InboundMessage, sent_to: str | None = None):
    """The delivery a reply answers (by In-Reply-To or References); with
    ``sent_to``, only one that was sent to that email address."""
    wanted = normalize("email", sent_to) if sent_to else None
    for message_id in referenced_ids(message):
        delivery = await store.delivery_by_message_id(conn, message_id)
        if delivery is None:
            continue
        if wanted is None:
            return delivery
        if delivery["channel"] == "email" and normalize("email", delivery["recipient"]) == wanted:
            return delivery
    return None


async def apply_refusal(
    conn: AsyncConnection, message: InboundMessage, keyword: str, now: datetime,
    contact_id: int | None, confirmations: Confirmations, authenticated: str | None = None,
) -> dict | None:
    """A reply asking to stop (``keyword`` found). Suppresses its From address
    (advertising, every channel) when it answers a delivery sent to that
    address, and returns that delivery, or when its From domain is
    ``authenticated`` (DMARC, :mod:`mas.authenticity`: the evidence in words);
    otherwise suppresses nobody, asks the address to confirm (customers only,
    once a day) and returns None."""
    sender = message.sender
    if not sender:
        log.info("refusal without a sender address: nothing to stop", extra={"keyword": keyword})
        return None
    delivery = await delivery_answered(conn, message, sent_to=sender)
    if delivery is not None:
        await refusal.refuse_address(
            conn, "email", sender, now, source="mas:reply", reason="refusal",
            detail=f"keyword {keyword!r}", delivery_id=delivery["id"],
            contact_id=delivery.get("contact_id") or contact_id, evidence=reply_evidence(delivery),
        )
        return delivery
    if authenticated:
        await refusal.refuse_address(
            conn, "email", sender, now, source="mas:dmarc", reason="refusal",
            detail=f"keyword {keyword!r}", contact_id=contact_id, evidence=authenticated,
        )
        return None
    facts = {"from": sender, "envelope_from": message.envelope_from, "keyword": keyword}
    if contact_id is None:
        log.info("unproven refusal from an address that is no customer's: nobody suppressed", extra=facts)
        return None
    if await confirmations.asked_lately(conn, sender):
        log.info("unproven refusal: confirmation already asked lately, nobody suppressed", extra=facts)
        return None
    confirmation = await notify.confirm_refusal(conn, sender, keyword, message.subject, now, contact_id=contact_id)
    confirmations.note(sender, confirmation)
    log.warning("unproven refusal: nobody suppressed, confirmation asked",
                extra={**facts, "confirmation_delivery": confirmation})
    return None


def reply_evidence(delivery: dict) -> str:
    """How a reply proved itself: it names the Message-ID of a message UMS sent to that address."""
    answered = f"reply to {delivery.get('message_id') or 'delivery ' + str(delivery['id'])}"
    return f"confirmed by {answered}" if delivery.get("template_name") == refusal.CONFIRM_TEMPLATE else answered


async def find_delivery(conn: AsyncConnection, token: str | None, message_id: str) -> dict | None:
    """By the per-delivery token (VERP) first, else by the returned Message-ID."""
    if token:
        delivery = await store.delivery_by_token(conn, token)
        if delivery:
            return delivery
    if message_id:
        return await store.delivery_by_message_id(conn, message_id)
    return None


def failure_for(delivery: dict, bounce: Bounce) -> Failure | None:
    """The failure that concerns this delivery's recipient (or the only one reported)."""
    recipient = delivery["recipient"].lower()
    for failure in bounce.failures:
        if failure.address == recipient:
            return failure
    return bounce.failures[0] if len(bounce.failures) == 1 else None


async def apply_bounce(
    conn: AsyncConnection, bounce: Bounce, token: str | None, now: datetime, threshold: int,
    stale_after: timedelta,
) -> dict | None:
    """Match a bounce to its delivery and act on it; returns the delivery, if matched.

    Permanent: suppress the recipient (reason ``bounce``), mark the delivery
    bounced and queue its next fallback channel — once. Temporary: add to the
    address's bounce score (afresh when the last one is older than
    ``stale_after``); at ``threshold`` the address is suppressed too. A block
    of our sending server (spam, reputation, DMARC: kind ``ignored``) says
    nothing about the recipient: it suppresses nobody and is logged as a
    WARNING for the operator. An unmatched bounce suppresses nobody: anyone
    can forge one.
    """
    delivery = await find_delivery(conn, token, bounce.original_message_id)
    if delivery is None:
        log.info("bounce matches no delivery", extra={"message_id": bounce.original_message_id})
        return None
    failure = failure_for(delivery, bounce)
    if failure is None:
        return delivery
    if failure.kind == IGNORED:
        log.warning(
            "the recipient's server blocked our mail (a sender problem): nobody suppressed",
            extra={"delivery": delivery["id"], "status": failure.status, "reason": failure.reason},
        )
    elif failure.permanent:
        await _permanent(conn, delivery, failure, now)
    else:
        await _temporary(conn, delivery, failure, now, threshold, stale_after)
    return delivery


async def _permanent(conn: AsyncConnection, delivery: dict, failure: Failure, now: datetime) -> None:
    if delivery.get("bounced_at") is not None:
        return  # a duplicate bounce for the same delivery
    detail = f"{failure.status} {failure.reason}".strip()
    await refusal.refuse_address(
        conn, delivery["channel"], delivery["recipient"], now, source="mas:bounce",
        reason="bounce", detail=detail, delivery_id=delivery["id"],
    )
    await store.mark_bounced(conn, delivery["id"], failure.status, detail, now)
    next_id = await outbox.fall_back(conn, delivery, now)
    log.info(
        "permanent bounce",
        extra={"delivery": delivery["id"], "status": failure.status, "fallback": next_id},
    )


async def _temporary(
    conn: AsyncConnection, delivery: dict, failure: Failure, now: datetime, threshold: int,
    stale_after: timedelta,
) -> None:
    await store.note_temporary(conn, delivery["id"], failure.status, now)
    score = await store.add_to_score(conn, delivery["channel"], delivery["recipient"], now, stale_after)
    if score >= threshold:
        await refusal.refuse_address(
            conn, delivery["channel"], delivery["recipient"], now, source="mas:bounce",
            reason="bounce", detail=f"{score} temporary bounces, last {failure.status}",
            delivery_id=delivery["id"],
        )
    log.info("temporary bounce", extra={"delivery": delivery["id"], "status": failure.status, "score": score})
