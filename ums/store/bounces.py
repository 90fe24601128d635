"""Inbound feedback on sent deliveries: finding a delivery from a bounce or a
refusal (by its per-delivery token or Message-ID), marking it bounced, and
keeping the temporary-bounce score per address.

A score decays as Mailman's ``bounce_info_stale_after`` does: a temporary
bounce more than ``stale_after`` after the last one starts the count afresh,
so a mailbox that was full once a season is never suppressed for it. Taking
an address off the suppression list forgets its score too
(:func:`ums.store.suppression.remove`)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..addresses import normalize
from ..db.models import bounce_scores, deliveries, suppressions

#: the per-delivery tokens of earlier versions (``secrets.token_urlsafe(18)``)
_LEGACY_TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")


async def delivery_by_token(conn: AsyncConnection, token: str) -> dict | None:
    """The delivery whose per-delivery secret is ``token``.

    Tokens are case-sensitive, but some MTAs change the case of the local part
    of a return path; an exact match wins. Tokens made now are lower-case hex,
    so an upper-cased one is found by its lower-case form (indexed). Only a
    token of the older 24-character form is matched case-insensitively, which
    reads the whole table: so a guessed token costs no more than one lookup.
    """
    if not token:
        return None
    row = (await conn.execute(select(deliveries).where(deliveries.c.token == token))).first()
    if row is None and token.lower() != token:
        row = (await conn.execute(select(deliveries).where(deliveries.c.token == token.lower()))).first()
    if row is None and _LEGACY_TOKEN.fullmatch(token):
        row = (
            await conn.execute(
                select(deliveries).where(func.lower(deliveries.c.token) == token.lower()).limit(2)
            )
        ).all()
        row = row[0] if len(row) == 1 else None
    return dict(row._mapping) if row else None


async def delivery_by_message_id(conn: AsyncConnection, message_id: str) -> dict | None:
    """The delivery that was sent with this Message-ID (angle brackets optional)."""
    message_id = message_id.strip()
    if not message_id:
        return None
    if not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    row = (await conn.execute(select(deliveries).where(deliveries.c.message_id == message_id))).first()
    return dict(row._mapping) if row else None


async def mark_bounced(
    conn: AsyncConnection, delivery_id: int, code: str, detail: str, now: datetime
) -> None:
    """Record a permanent bounce on a delivery (it stays in its final state)."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(bounced_at=now, last_code=code[:16], last_error=detail, updated_at=now)
    )


async def note_temporary(conn: AsyncConnection, delivery_id: int, code: str, now: datetime) -> None:
    """Remember the latest temporary failure code reported for a delivery."""
    await conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id)
        .values(last_code=code[:16], updated_at=now)
    )


async def add_to_score(
    conn: AsyncConnection, channel: str, address: str, now: datetime, stale_after: timedelta,
) -> int:
    """Count one more temporary bounce for an address; returns the new score
    (1 when the last one is older than ``stale_after``)."""
    address = normalize(channel, address)
    where = (bounce_scores.c.channel == channel, bounce_scores.c.address == address)
    row = (await conn.execute(select(bounce_scores.c.score, bounce_scores.c.last_bounce_at).where(*where))).first()
    if row is None:
        await conn.execute(
            bounce_scores.insert().values(channel=channel, address=address, score=1, last_bounce_at=now)
        )
        return 1
    stale = row.last_bounce_at is None or now - row.last_bounce_at > stale_after
    score = 1 if stale else row.score + 1
    await conn.execute(update(bounce_scores).where(*where).values(score=score, last_bounce_at=now))
    return score


async def score_of(conn: AsyncConnection, channel: str, address: str) -> int:
    score = await conn.scalar(
        select(bounce_scores.c.score).where(
            bounce_scores.c.channel == channel,
            bounce_scores.c.address == normalize(channel, address),
        )
    )
    return score or 0


async def scores_of(conn: AsyncConnection, channel: str, addresses) -> dict[str, int]:
    """The scores of the given normalised addresses that have one (one query)."""
    wanted = set(addresses)
    if not wanted:
        return {}
    rows = await conn.execute(
        select(bounce_scores.c.address, bounce_scores.c.score)
        .where(bounce_scores.c.channel == channel, bounce_scores.c.address.in_(wanted))
    )
    return dict(rows.all())


async def reset_score(conn: AsyncConnection, channel: str, address: str) -> None:
    """Forget an address's temporary bounces."""
    await conn.execute(
        delete(bounce_scores).where(
            bounce_scores.c.channel == channel, bounce_scores.c.address == normalize(channel, address)
        )
    )


async def stamp_suppression(conn: AsyncConnection, channel: str, address: str, at: datetime) -> None:
    """Set the time of a suppression MAS just added to MAS's clock (not the database's)."""
    await conn.execute(
        update(suppressions)
        .where(suppressions.c.channel == channel, suppressions.c.address == normalize(channel, address))
        .values(created_at=at)
    )
