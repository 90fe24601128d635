"""The delivery queue (PASS): enqueue, claim with a lease, finish with a CDR row."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import deliveries

PENDING_STATES = ("queued", "retry", "waiting", "sending")
FINAL_STATES = ("sent", "failed", "suppressed", "expired", "cancelled")


async def count_pending(conn: AsyncConnection) -> int:
    return await conn.scalar(
        select(func.count()).select_from(deliveries).where(deliveries.c.state.in_(PENDING_STATES))
    )
