"""What the operator dashboard reads: finished deliveries and refusals over
a recent window (the queue's depth by state is :func:`ums.store.deliveries.stats`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import deliveries, suppressions
from . import as_utc

REFUSALS = ("unsubscribe", "refusal")


async def finished_since(conn: AsyncConnection, since: datetime) -> list[tuple]:
    """(finished_at, channel, state, bounced_at) of every delivery that ended since ``since``."""
    rows = await conn.execute(
        select(deliveries.c.finished_at, deliveries.c.channel, deliveries.c.state, deliveries.c.bounced_at)
        .where(deliveries.c.finished_at >= since)
    )
    return [(as_utc(finished), channel, state, as_utc(bounced)) for finished, channel, state, bounced in rows]


async def refusals_since(conn: AsyncConnection, since: datetime) -> list[tuple[datetime, str]]:
    """(when, channel) of each refusal of receipt recorded since ``since``."""
    rows = await conn.execute(
        select(suppressions.c.created_at, suppressions.c.channel)
        .where(suppressions.c.created_at >= since, suppressions.c.reason.in_(REFUSALS))
    )
    return [(as_utc(when), channel) for when, channel in rows]


async def bounces_since(conn: AsyncConnection, since: datetime) -> int:
    return await conn.scalar(select(func.count()).select_from(deliveries).where(deliveries.c.bounced_at >= since))
