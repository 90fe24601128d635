"""Refusal of receipt: the ONE place that records "stop sending to me".

Every way a recipient can refuse ends here, so each is recorded the same way
(added to the suppression list at once, with its source and time) and PASS,
which re-checks suppression before every send, skips the address from the
next send on:

* MAS: a reply asking to stop (``수신거부``, "unsubscribe"…) to a message UMS
  sent to that address, and mail to the per-delivery ``List-Unsubscribe``
  mailto address ``unsubscribe+<token>@…``;
* WAS: the RFC 8058 one-click ``POST /unsubscribe/<token>``;
* MAS bounces use :func:`refuse_address` with ``reason="bounce"``.

A refusal (reasons ``refusal`` and ``unsubscribe``) is a refusal of
ADVERTISING: its entries have scope ``advertising``, which stops advertising
and leaves transactional notices (an account alert) alone, and it covers the
customer on every channel — the email, fax and phone numbers of the contact
it concerns are suppressed with it. Bounces, complaints and operator entries
stop everything (scope ``all``) on their own channel and address only.

Whether a refusal provably comes from the customer is the caller's to decide
(MAS: a reply to a delivery sent to that address, a per-delivery token, or a
From domain passing DMARC; see :mod:`mas.feedback`): these functions record
what they are given, with the caller's evidence (``suppressions.evidence``).

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

from .addresses import CHANNELS, is_valid, normalize
from .errors import UmsError
from .store import bounces, contacts, suppression

log = logging.getLogger("ums.refusal")

#: reasons a suppression can carry (see the ``suppressions`` table)
REASONS = ("unsubscribe", "refusal", "bounce", "complaint", "manual")
#: what an entry of each reason stops when the caller does not say
DEFAULT_SCOPE = {
    "unsubscribe": suppression.ADVERTISING, "refusal": suppression.ADVERTISING,
    "bounce": suppression.ALL, "complaint": suppression.ALL, "manual": suppression.ALL,
}
#: the template of the mail asking an address to confirm a refusal MAS could not
#: authenticate (sent by :mod:`mas.notify`); answering it is the confirmation
CONFIRM_TEMPLATE = "mas-refusal-confirm"
#: a contact's column holding its address on each channel
CONTACT_COLUMNS = {"email": "email", "fax": "fax", "voice": "phone"}


class BadRefusal(UmsError):
    """Cannot record refusal: {reason}."""


@dataclass(frozen=True)
class Refusal:
    """What was recorded: the suppressed channel and address, whether it was
    newly added (False when it already was suppressed as widely — the first
    reason stays), the delivery it came from, if known, the entry's scope, and
    the customer's addresses on other channels suppressed with it."""

    channel: str
    address: str
    added: bool
    delivery_id: int | None = None
    scope: str = suppression.ALL
    also: tuple[tuple[str, str], ...] = ()


async def refuse_address(
    conn: AsyncConnection, channel: str, address: str, now: datetime, source: str,
    reason: str = "refusal", detail: str | None = None, delivery_id: int | None = None,
    scope: str | None = None, contact_id: int | None = None, evidence: str | None = None,
) -> Refusal:
    """Suppress ``address`` on ``channel`` from ``now`` on.

    ``source`` says where the refusal came from (``mas:reply``,
    ``mas:list-unsubscribe``, ``one-click``, ``mas:bounce``, an operator name…);
    ``reason`` is one of :data:`REASONS`; ``detail`` is free text (the
    keyword matched, the DSN status…); ``scope`` defaults by reason
    (:data:`DEFAULT_SCOPE`); ``evidence`` says why the refusal can be trusted
    (``reply to <message-id>``, ``token of delivery N``, ``dkim=pass d=…
    aligned``…). An ``advertising`` refusal also suppresses the other
    addresses of the contact (``contact_id``, else the contact with this
    email address). Idempotent: refusing twice keeps the first record and
    returns ``added=False``.
    """
    if channel not in CHANNELS:
        raise BadRefusal(reason=f"unknown channel {channel!r}")
    if reason not in REASONS:
        raise BadRefusal(reason=f"unknown reason {reason!r}")
    if not address or not address.strip():
        raise BadRefusal(reason="no address")
    scope = scope or DEFAULT_SCOPE[reason]
    if scope not in suppression.SCOPES:
        raise BadRefusal(reason=f"unknown scope {scope!r}")
    address = normalize(channel, address)
    added = await _suppress(conn, channel, address, now, source, reason, detail, scope, evidence)
    also = []
    if scope == suppression.ADVERTISING:
        for other_channel, other in await _contact_addresses(conn, channel, address, contact_id):
            note = f"refused on {channel} {address}" + (f": {detail}" if detail else "")
            if await _suppress(conn, other_channel, other, now, source, reason, note, scope, evidence):
                also.append((other_channel, other))
    return Refusal(channel, address, added, delivery_id, scope, tuple(also))


async def _suppress(conn, channel, address, now, source, reason, detail, scope, evidence) -> bool:
    added = await suppression.add(conn, channel, address, reason, source=source, detail=detail, scope=scope,
                                  evidence=evidence)
    if added:
        await bounces.stamp_suppression(conn, channel, address, now)
        log.info(
            "address suppressed",
            extra={"channel": channel, "address": address, "reason": reason, "scope": scope, "source": source},
        )
    return added


async def _contact_addresses(
    conn: AsyncConnection, channel: str, address: str, contact_id: int | None,
) -> list[tuple[str, str]]:
    """The contact's valid addresses on the channels other than (channel, address)."""
    contact = await contacts.get(conn, contact_id) if contact_id else None
    if contact is None and channel == "email":
        contact = await contacts.by_email(conn, address)
    if contact is None:
        return []
    found = []
    for other_channel, column in CONTACT_COLUMNS.items():
        value = (contact.get(column) or "").strip()
        if not value or not is_valid(other_channel, value):
            continue
        other = normalize(other_channel, value)
        if (other_channel, other) != (channel, address):
            found.append((other_channel, other))
    return found


async def refuse_by_token(
    conn: AsyncConnection, token: str, now: datetime, source: str,
    reason: str = "unsubscribe", detail: str | None = None,
) -> Refusal | None:
    """Suppress the recipient of the delivery whose per-delivery token is ``token``
    (and, a refusal of advertising, the contact's other channels).

    Returns None (and records nothing) when no delivery has that token, so a
    guessed or mistyped link cannot suppress anyone.
    """
    delivery = await bounces.delivery_by_token(conn, token)
    if delivery is None:
        return None
    return await refuse_address(
        conn, delivery["channel"], delivery["recipient"], now, source,
        reason=reason, detail=detail, delivery_id=delivery["id"], contact_id=delivery.get("contact_id"),
        evidence=token_evidence(delivery),
    )


def token_evidence(delivery: dict) -> str:
    """How a token proved itself: it names one delivery, and only its recipient was given it."""
    if delivery.get("template_name") == CONFIRM_TEMPLATE:
        return f"confirmed by link (delivery {delivery['id']})"
    return f"token of delivery {delivery['id']}"
