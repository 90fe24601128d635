"""The suppression list: addresses that must not be sent to (refusals,
unsubscribes, permanent bounces, operator entries). PASS checks it before
every send; MAS and WAS add to it.

Every entry has a scope: ``all`` stops every send to the address (a bounce,
an operator's entry), ``advertising`` stops advertising only — a refusal of
advertising leaves transactional notices (an account alert) alone. One entry
per channel and address: adding ``all`` where ``advertising`` is widens the
entry (and takes the new reason); adding ``advertising`` where ``all`` is
changes nothing.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..addresses import normalize
from ..db.models import suppressions
from ..errors import UmsError
from . import bounces

ALL, ADVERTISING = "all", "advertising"
SCOPES = (ALL, ADVERTISING)


class BadScope(UmsError):
    """Unknown suppression scope {scope!r}: expected all or advertising."""


async def add(
    conn: AsyncConnection, channel: str, address: str, reason: str,
    source: str | None = None, detail: str | None = None, scope: str = ALL, evidence: str | None = None,
) -> bool:
    """Suppress an address; returns False if it already was, as widely (the first reason stays).
    ``evidence`` says why the entry can be trusted (see ``suppressions.evidence``)."""
    return await conn.run_sync(add_sync, channel, address, reason, source, detail, scope, evidence)


def add_sync(
    conn: Connection, channel: str, address: str, reason: str,
    source: str | None = None, detail: str | None = None, scope: str = ALL, evidence: str | None = None,
) -> bool:
    """:func:`add` on a sync connection (inside PASS's record batch)."""
    if scope not in SCOPES:
        raise BadScope(scope=scope)
    address = normalize(channel, address)
    existing = conn.execute(_entry(channel, address, suppressions.c.id, suppressions.c.scope)).first()
    if existing is not None:
        if not (existing.scope == ADVERTISING and scope == ALL):
            return False
        # widened: a new entry (a new id, so PASS's check of what was added lately sees it)
        conn.execute(delete(suppressions).where(suppressions.c.id == existing.id))
    try:
        with conn.begin_nested():
            conn.execute(
                suppressions.insert().values(
                    channel=channel, address=address, reason=reason, scope=scope, source=source, detail=detail,
                    evidence=evidence,
                )
            )
    except IntegrityError:  # a concurrent writer got there first
        return False
    return True


async def remove(conn: AsyncConnection, channel: str, address: str) -> bool:
    """Take an address off the list; its temporary-bounce score starts afresh too
    (else the next temporary bounce would suppress it again at once). Returns
    whether it was on the list."""
    await bounces.reset_score(conn, channel, address)
    result = await conn.execute(
        delete(suppressions).where(
            suppressions.c.channel == channel, suppressions.c.address == normalize(channel, address)
        )
    )
    return result.rowcount > 0


async def is_suppressed(conn: AsyncConnection, channel: str, address: str) -> bool:
    """Whether the address has an entry (of any scope)."""
    return await scope_of(conn, channel, address) is not None


async def scope_of(conn: AsyncConnection, channel: str, address: str) -> str | None:
    """The scope of the address's entry (``all`` or ``advertising``), None when it has none."""
    return await conn.scalar(_entry(channel, normalize(channel, address), suppressions.c.scope))


def _entry(channel: str, normalized_address: str, *columns):
    return select(*columns).where(suppressions.c.channel == channel,
                                  suppressions.c.address == normalized_address)


async def entries(conn: AsyncConnection, channel: str | None = None, limit: int = 1000) -> list[dict]:
    query = select(suppressions).order_by(suppressions.c.id.desc()).limit(limit)
    if channel:
        query = query.where(suppressions.c.channel == channel)
    return [dict(row._mapping) for row in await conn.execute(query)]


def suppressed_among(conn: Connection, channel: str, addresses) -> dict[str, str]:
    """The normalised addresses among ``addresses`` that have an entry, each with
    its scope (one query; sync, inside PASS's claim batch)."""
    wanted = {normalize(channel, address) for address in addresses}
    if not wanted:
        return {}
    rows = conn.execute(
        select(suppressions.c.address, suppressions.c.scope)
        .where(suppressions.c.channel == channel, suppressions.c.address.in_(wanted))
    )
    return dict(rows.all())


async def last_id(conn: AsyncConnection) -> int:
    return await conn.scalar(select(func.max(suppressions.c.id))) or 0


async def added_after(conn: AsyncConnection, after_id: int) -> list[tuple[int, str, str, str]]:
    """(id, channel, address, scope) of entries with an id above ``after_id``:
    what PASS ends unsent among deliveries it had already claimed (an
    ``advertising`` entry only ends advertising)."""
    rows = await conn.execute(
        select(suppressions.c.id, suppressions.c.channel, suppressions.c.address, suppressions.c.scope)
        .where(suppressions.c.id > after_id).order_by(suppressions.c.id)
    )
    return [tuple(row) for row in rows]
