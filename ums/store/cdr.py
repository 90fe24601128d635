"""CDR rows: reading them back for the daily CSV files, exports and billing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import cdr
from . import as_dicts

#: report groupings: --by NAME → the CDR column
GROUPINGS = {"campaign": cdr.c.source, "channel": cdr.c.medium, "account": cdr.c.accountcode}


async def after(conn: AsyncConnection, last_id: int, limit: int = 5000) -> list[dict]:
    return as_dicts(await conn.execute(select(cdr).where(cdr.c.id > last_id).order_by(cdr.c.id).limit(limit)))


async def recent_sends(conn: AsyncConnection, medium: str, since: datetime, limit: int) -> list[datetime]:
    """Start times of the last ``limit`` delivered attempts on ``medium`` since
    ``since``, oldest first — what every PASS process sent, for the hourly windows."""
    rows = await conn.execute(
        select(cdr.c.start)
        .where(cdr.c.start >= since, cdr.c.medium == medium, cdr.c.disposition == "ANSWERED")
        .order_by(cdr.c.start.desc()).limit(limit)
    )
    return sorted(rows.scalars().all())


async def max_id_of(conn: AsyncConnection, uniqueids: list[str]) -> int:
    if not uniqueids:
        return 0
    return await conn.scalar(select(func.max(cdr.c.id)).where(cdr.c.uniqueid.in_(uniqueids))) or 0


async def between(conn: AsyncConnection, since: datetime, until: datetime):
    """Rows with start in [since, until), streamed in id order (constant memory)."""
    result = await conn.stream(
        select(cdr).where(cdr.c.start >= since, cdr.c.start < until).order_by(cdr.c.id)
    )
    async for row in result:
        yield dict(row._mapping)


async def totals(conn: AsyncConnection, since: datetime, until: datetime, by: str) -> list[dict]:
    """Billing totals per group: attempts, delivered, pages, billed seconds, cost."""
    column = GROUPINGS[by]
    rows = await conn.execute(
        select(
            column.label("key"),
            func.count().label("attempts"),
            func.coalesce(func.sum(case((cdr.c.disposition == "ANSWERED", 1), else_=0)), 0).label("delivered"),
            func.coalesce(func.sum(cdr.c.pages), 0).label("pages"),
            func.coalesce(func.sum(cdr.c.billsec), 0).label("billsec"),
            func.coalesce(func.sum(cdr.c.cost), 0).label("cost"),
        )
        .where(cdr.c.start >= since, cdr.c.start < until)
        .group_by(column)
        .order_by(column)
    )
    return [dict(row._mapping) for row in rows]


async def final_count(conn: AsyncConnection) -> int:
    return await conn.scalar(select(func.count()).select_from(cdr).where(cdr.c.final.is_(True)))
