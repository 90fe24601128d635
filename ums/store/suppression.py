"""The suppression list: addresses that must not be sent to (refusals,
unsubscribes, permanent bounces, operator entries). PASS checks it before
every send; MAS and WAS add to it."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..addresses import normalize
from ..db.models import suppressions


async def add(
    conn: AsyncConnection, channel: str, address: str, reason: str,
    source: str | None = None, detail: str | None = None,
) -> bool:
    """Suppress an address; returns False if it already was (the first reason stays)."""
    return await conn.run_sync(add_sync, channel, address, reason, source, detail)


def add_sync(
    conn: Connection, channel: str, address: str, reason: str,
    source: str | None = None, detail: str | None = None,
) -> bool:
    """:func:`add` on a sync connection (inside PASS's record batch)."""
    address = normalize(channel, address)
    if conn.scalar(_entry_id(channel, address)) is not None:
        return False
    try:
        with conn.begin_nested():
            conn.execute(
                suppressions.insert().values(
                    channel=channel, address=address, reason=reason, source=source, detail=detail
                )
            )
    except IntegrityError:  # a concurrent writer got there first
        return False
    return True


async def remove(conn: AsyncConnection, channel: str, address: str) -> bool:
    result = await conn.execute(
        delete(suppressions).where(
            suppressions.c.channel == channel, suppressions.c.address == normalize(channel, address)
        )
    )
    return result.rowcount > 0


async def is_suppressed(conn: AsyncConnection, channel: str, address: str) -> bool:
    return await conn.scalar(_entry_id(channel, normalize(channel, address))) is not None


def _entry_id(channel: str, normalized_address: str):
    return select(suppressions.c.id).where(suppressions.c.channel == channel,
                                           suppressions.c.address == normalized_address)


async def entries(conn: AsyncConnection, channel: str | None = None, limit: int = 1000) -> list[dict]:
    query = select(suppressions).order_by(suppressions.c.id.desc()).limit(limit)
    if channel:
        query = query.where(suppressions.c.channel == channel)
    return [dict(row._mapping) for row in await conn.execute(query)]


def suppressed_among(conn: Connection, channel: str, addresses) -> set[str]:
    """The normalised addresses among ``addresses`` that are suppressed (one query; sync,
    inside PASS's claim batch)."""
    wanted = {normalize(channel, address) for address in addresses}
    if not wanted:
        return set()
    rows = conn.execute(
        select(suppressions.c.address).where(suppressions.c.channel == channel, suppressions.c.address.in_(wanted))
    )
    return set(rows.scalars().all())


async def last_id(conn: AsyncConnection) -> int:
    return await conn.scalar(select(func.max(suppressions.c.id))) or 0


async def added_after(conn: AsyncConnection, after_id: int) -> list[tuple[int, str, str]]:
    """(id, channel, address) of entries with an id above ``after_id``: what was
    suppressed since PASS last looked."""
    rows = await conn.execute(
        select(suppressions.c.id, suppressions.c.channel, suppressions.c.address)
        .where(suppressions.c.id > after_id).order_by(suppressions.c.id)
    )
    return [tuple(row) for row in rows]
