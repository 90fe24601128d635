"""Refusal of receipt: the ONE place that records "stop sending to me".

Every way a recipient can refuse ends here, so each is recorded the same way
(added to the suppression list at once, with its source and time) and PASS,
which re-checks suppression before every send, skips the address from the
next send on:

* MAS: a reply asking to stop (``수신거부``, "unsubscribe"…) and mail to the
  per-delivery ``List-Unsubscribe`` mailto address ``unsubscribe+<token>@…``;
* WAS: the RFC 8058 one-click ``POST /unsubscribe/<token>``;
* MAS bounces use :func:`refuse_address` with ``reason="bounce"``.

Both functions run inside the caller's transaction (``async with db.begin()``);
the refusal is durable when the caller commits. Example (WAS one-click)::

    async with ctx.db.begin() as conn:
        result = await refusal.refuse_by_token(
            conn, token, ctx.clock(), source="one-click", detail=request_ip)
    if result is None:
        ...  # unknown token: answer 404, nothing recorded
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from .addresses import CHANNELS, normalize
from .errors import UmsError
from .store import bounces, suppression

log = logging.getLogger("ums.refusal")

#: reasons a suppression can carry (see the ``suppressions`` table)
REASONS = ("unsubscribe", "refusal", "bounce", "complaint", "manual")


class BadRefusal(UmsError):
    """Cannot record refusal: {reason}."""


@dataclass(frozen=True)
class Refusal:
    """What was recorded: the suppressed channel and address, whether it was
    newly added (False when it already was suppressed — the first reason
    stays), and the delivery it came from, if known."""

    channel: str
    address: str
    added: bool
    delivery_id: int | None = None


async def refuse_address(
    conn: AsyncConnection, channel: str, address: str, now: datetime, source: str,
    reason: str = "refusal", detail: str | None = None, delivery_id: int | None = None,
) -> Refusal:
    """Suppress ``address`` on ``channel`` from ``now`` on.

    ``source`` says where the refusal came from (``mas:reply``,
    ``mas:list-unsubscribe``, ``one-click``, ``mas:bounce``, an operator name…);
    ``reason`` is one of :data:`REASONS`; ``detail`` is free text (the
    keyword matched, the DSN status…). Idempotent: refusing twice keeps the
    first record and returns ``added=False``.
    """
    if channel not in CHANNELS:
        raise BadRefusal(reason=f"unknown channel {channel!r}")
    if reason not in REASONS:
        raise BadRefusal(reason=f"unknown reason {reason!r}")
    if not address or not address.strip():
        raise BadRefusal(reason="no address")
    address = normalize(channel, address)
    added = await suppression.add(conn, channel, address, reason, source=source, detail=detail)
    if added:
        await bounces.stamp_suppression(conn, channel, address, now)
        log.info(
            "address suppressed",
            extra={"channel": channel, "address": address, "reason": reason, "source": source},
        )
    return Refusal(channel, address, added, delivery_id)


async def refuse_by_token(
    conn: AsyncConnection, token: str, now: datetime, source: str,
    reason: str = "unsubscribe", detail: str | None = None,
) -> Refusal | None:
    """Suppress the recipient of the delivery whose per-delivery token is ``token``.

    Returns None (and records nothing) when no delivery has that token, so a
    guessed or mistyped link cannot suppress anyone.
    """
    delivery = await bounces.delivery_by_token(conn, token)
    if delivery is None:
        return None
    return await refuse_address(
        conn, delivery["channel"], delivery["recipient"], now, source,
        reason=reason, detail=detail, delivery_id=delivery["id"],
    )
