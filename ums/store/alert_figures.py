"""What the bounce and refusal rate alerts count, read by row id rather than
by time: ``suppressions.created_at`` is the database server's clock, and no
decision may use it (DESIGN, Time). The caller keeps the ids it has seen and
asks what came after them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import cdr, suppressions

BOUNCE_REASONS = ("bounce",)
REFUSAL_REASONS = ("refusal", "unsubscribe", "complaint")


async def last_ids(conn: AsyncConnection) -> tuple[int, int]:
    """The highest CDR and suppression ids now (0 for none)."""
    cdr_id = await conn.scalar(select(func.max(cdr.c.id))) or 0
    suppression_id = await conn.scalar(select(func.max(suppressions.c.id))) or 0
    return cdr_id, suppression_id


async def counts_after(conn: AsyncConnection, cdr_after: int, suppression_after: int,
                       cdr_until: int, suppression_until: int) -> dict[str, int]:
    """Deliveries the relay accepted (final CDR rows, ANSWERED), addresses
    suppressed for a permanent bounce, and for a refusal, between the ids."""
    sent = await conn.scalar(
        select(func.count()).select_from(cdr).where(
            cdr.c.id > cdr_after, cdr.c.id <= cdr_until, cdr.c.final.is_(True), cdr.c.disposition == "ANSWERED"))
    reasons = dict((await conn.execute(
        select(suppressions.c.reason, func.count())
        .where(suppressions.c.id > suppression_after, suppressions.c.id <= suppression_until)
        .group_by(suppressions.c.reason))).all())
    return {"sent": sent or 0,
            "bounced": sum(reasons.get(reason, 0) for reason in BOUNCE_REASONS),
            "refused": sum(reasons.get(reason, 0) for reason in REFUSAL_REASONS)}
