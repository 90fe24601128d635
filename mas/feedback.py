"""Applying what recipients tell us: bounces and refusals, inside the caller's
transaction (the one that also stores the message, so both commit together)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ums import outbox, refusal
from ums.store import bounces as store

from .bounce import Bounce, Failure

log = logging.getLogger("ums.mas.feedback")


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
) -> dict | None:
    """Match a bounce to its delivery and act on it; returns the delivery, if matched.

    Permanent (5.x.x): suppress the recipient (reason ``bounce``), mark the
    delivery bounced and queue its next fallback channel — once. Temporary
    (4.x.x): add to the address's bounce score; at ``threshold`` the address is
    suppressed too. An unmatched bounce suppresses nobody: anyone can forge one.
    """
    delivery = await find_delivery(conn, token, bounce.original_message_id)
    if delivery is None:
        log.info("bounce matches no delivery", extra={"message_id": bounce.original_message_id})
        return None
    failure = failure_for(delivery, bounce)
    if failure is None:
        return delivery
    if failure.permanent:
        await _permanent(conn, delivery, failure, now)
    else:
        await _temporary(conn, delivery, failure, now, threshold)
    return delivery


async def _permanent(conn: AsyncConnection, delivery: dict, failure: Failure, now: datetime) -> None:
    if delivery.get("bounced_at") is not None:
        return  # a duplicate bounce for the same delivery
    detail = f"{failure.status} {failure.diagnostic}".strip()
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
) -> None:
    await store.note_temporary(conn, delivery["id"], failure.status, now)
    score = await store.add_to_score(conn, delivery["channel"], delivery["recipient"], now)
    if score >= threshold:
        await refusal.refuse_address(
            conn, delivery["channel"], delivery["recipient"], now, source="mas:bounce",
            reason="bounce", detail=f"{score} temporary bounces, last {failure.status}",
            delivery_id=delivery["id"],
        )
    log.info("temporary bounce", extra={"delivery": delivery["id"], "status": failure.status, "score": score})
