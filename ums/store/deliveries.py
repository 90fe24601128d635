"""The delivery queue (PASS): enqueue, claim with a lease, finish with a CDR row.

Lifecycle: ``queued``/``retry``/``waiting`` rows that are due are *claimed*
(``sending``, ``locked_by`` = the worker, ``lease_until``); an expired lease
may be claimed again by anyone. A claimed row is finished by its owner only
(:func:`finish` checks ``locked_by``): a final state with its one final CDR
row, or ``retry`` with a non-final CDR row — in the same transaction.
On PostgreSQL claiming uses ``FOR UPDATE SKIP LOCKED`` so several PASS
processes share the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Callable

from sqlalchemy import DateTime, Numeric, String, bindparam, case, cast, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import campaigns, cdr, deliveries
from . import as_dicts

PENDING_STATES = ("queued", "retry", "waiting", "sending")
FINAL_STATES = ("sent", "failed", "suppressed", "expired", "cancelled")
CLAIMABLE_STATES = ("retry", "waiting", "queued")
#: campaigns in these states hold their deliveries back
HOLDING_CAMPAIGN_STATES = ("draft", "scheduled", "paused", "missed")


async def count_pending(conn: AsyncConnection) -> int:
    return await conn.scalar(
        select(func.count()).select_from(deliveries).where(deliveries.c.state.in_(PENDING_STATES))
    )


def _not_held():
    held = select(campaigns.c.id).where(campaigns.c.state.in_(HOLDING_CAMPAIGN_STATES))
    return or_(deliveries.c.campaign_id.is_(None), deliveries.c.campaign_id.not_in(held))


def claim(
    conn: Connection, worker: str, now: datetime, lease_until: datetime, limit: int,
    channels: list[str] | None = None,
) -> list[dict]:
    """Lease up to ``limit`` due deliveries to ``worker`` and return them.

    Expired leases (a worker that died mid-send) are claimed first, then
    retries, deliveries that waited for the night to end, and new ones —
    each in due order, so the claim index is walked, never sorted. Only
    deliveries for ``channels`` (those this worker could load) are taken.
    """
    ids: list[int] = []
    served = deliveries.c.channel.in_(channels) if channels is not None else deliveries.c.channel.is_not(None)
    stale = select(deliveries.c.id).where(
        deliveries.c.state == "sending", deliveries.c.lease_until < now, served
    ).limit(limit)
    ids += _claimable_ids(conn, stale)
    for state in CLAIMABLE_STATES:
        if len(ids) >= limit:
            break
        due = (
            select(deliveries.c.id)
            .where(deliveries.c.state == state, deliveries.c.due_at <= now, _not_held(), served)
            .order_by(deliveries.c.due_at)
            .limit(limit - len(ids))
        )
        ids += _claimable_ids(conn, due)
    if not ids:
        return []
    rows = conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids))
        .values(state="sending", locked_by=worker, lease_until=lease_until, updated_at=now)
        .returning(*deliveries.c)
    )
    return as_dicts(rows)


def by_ids(conn: Connection, ids: list[int]) -> list[dict]:
    """Whole rows of ``ids`` (sync, inside a PASS batch)."""
    if not ids:
        return []
    return as_dicts(conn.execute(select(deliveries).where(deliveries.c.id.in_(ids))))


def owned(conn: Connection, ids: list[int], worker: str) -> set[int]:
    """Which of ``ids`` are still leased to ``worker`` (locked for update on PostgreSQL)."""
    if not ids:
        return set()
    query = select(deliveries.c.id).where(deliveries.c.id.in_(ids), deliveries.c.locked_by == worker)
    if conn.dialect.name == "postgresql":
        return set(conn.execute(query.with_for_update()).scalars().all())
    return set(_ids_in_one_row(conn, query))


def _claimable_ids(conn: Connection, query) -> list[int]:
    if conn.dialect.name == "postgresql":
        return conn.execute(query.with_for_update(skip_locked=True)).scalars().all()
    return _ids_in_one_row(conn, query)


def _ids_in_one_row(conn: Connection, query) -> list[int]:
    """The ids ``query`` selects, fetched as one row (SQLite's group_concat): each
    row fetched is a step that hands the interpreter lock away and waits for it back."""
    joined = conn.scalar(select(func.group_concat(query.subquery().c.id)))
    return [int(part) for part in joined.split(",")] if joined else []


_FINISH = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"), attempts=bindparam("b_attempts"), due_at=bindparam("b_due_at"),
        # a bounce can arrive (MAS) before PASS records the send: its code stays
        last_code=case((deliveries.c.bounced_at.is_(None), bindparam("b_code")), else_=deliveries.c.last_code),
        last_error=case((deliveries.c.bounced_at.is_(None), bindparam("b_error")), else_=deliveries.c.last_error),
        finished_at=bindparam("b_finished"),
        updated_at=bindparam("b_now"), locked_by=None, lease_until=None,
    )
)


def finish(conn: Connection, changes: list[dict], cdr_rows: list[dict]) -> None:
    """Write many state changes and their CDR rows (executemany; the caller
    checked ownership with :func:`owned` in this same transaction).

    Each change has b_id, b_state, b_attempts, b_due_at, b_code, b_error,
    b_finished, b_now."""
    # the hot path of a campaign: statements compiled once per dialect, rows passed
    # as plain tuples (SQLAlchemy's per-row parameter processing costs more than
    # the database's own work here). On SQLite each chunk of rows is ONE statement:
    # executemany steps once per row, and every step hands the interpreter lock to
    # the event loop's thread and must wait to get it back.
    if conn.dialect.name == "sqlite":
        _finish_sqlite(conn, changes)
    else:
        _executemany_plain(conn, _FINISH, ("finish",), changes)
    columns = cdr_rows[0].keys() if cdr_rows else ()
    if cdr_rows and all(row.keys() == columns for row in cdr_rows):
        statement = insert(cdr).values({name: bindparam(name) for name in columns})
        if conn.dialect.name == "sqlite":
            _insert_sqlite(conn, statement, ("cdr", tuple(columns)), cdr_rows)
        else:
            _executemany_plain(conn, statement, ("cdr", tuple(columns)), cdr_rows)
    elif cdr_rows:
        conn.execute(insert(cdr), cdr_rows)


#: :data:`_FINISH` for many rows at once (SQLite names VALUES columns column1, column2, …)
_FINISH_SQLITE = (
    "UPDATE deliveries SET state = v.column2, attempts = v.column3, due_at = v.column4, "
    "last_code = CASE WHEN deliveries.bounced_at IS NULL THEN v.column5 ELSE deliveries.last_code END, "
    "last_error = CASE WHEN deliveries.bounced_at IS NULL THEN v.column6 ELSE deliveries.last_error END, "
    "finished_at = v.column7, updated_at = v.column8, locked_by = NULL, lease_until = NULL "
    "FROM (VALUES {rows}) AS v WHERE deliveries.id = v.column1"
)
_FINISH_NAMES = ("b_id", "b_state", "b_attempts", "b_due_at", "b_code", "b_error", "b_finished", "b_now")
_FINISH_FIELDS = itemgetter(*_FINISH_NAMES)
_FINISH_TIMES = tuple(_FINISH_NAMES.index(name) for name in ("b_due_at", "b_finished", "b_now"))
_FINISH_GROUP = "(" + ", ".join(["?"] * len(_FINISH_NAMES)) + ")"
#: SQLite takes at most 32766 parameters per statement
_SQLITE_PARAMETERS = 32000


def _finish_sqlite(conn: Connection, changes: list[dict]) -> None:
    values = [_converted(_FINISH_FIELDS(change), _FINISH_TIMES) for change in changes]
    for chunk in _chunks(values, _SQLITE_PARAMETERS // len(_FINISH_NAMES)):
        conn.exec_driver_sql(_FINISH_SQLITE.format(rows=", ".join([_FINISH_GROUP] * len(chunk))),
                             tuple(value for row in chunk for value in row))


def _insert_sqlite(conn: Connection, statement, key: tuple, rows: list[dict]) -> None:
    """A multi-row INSERT … VALUES (…), (…) per chunk of ``rows``."""
    plain = _plain(conn, statement, key)
    head, _, group = plain.sql.rpartition(" VALUES ")
    values = _parameters(plain, rows)
    for chunk in _chunks(values, max(1, _SQLITE_PARAMETERS // len(values[0]))):
        conn.exec_driver_sql(f"{head} VALUES {', '.join([group] * len(chunk))}",
                             tuple(value for row in chunk for value in row))


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass(frozen=True)
class _Plain:
    """A statement compiled once, and how to turn a row dict into its parameters."""

    sql: str
    pick: Callable[[dict], tuple]
    #: the statement's own bind values (e.g. ``locked_by=None``), for names a row lacks
    own: dict
    #: positions whose values SQLite needs converted (datetimes, decimals)
    converted: tuple[int, ...]


_COMPILED: dict[tuple, _Plain] = {}


def _plain(conn: Connection, statement, key: tuple) -> _Plain:
    found = _COMPILED.get((conn.dialect.name, *key))
    if found is None:
        done = statement.compile(dialect=conn.dialect)
        names = list(done.positiontup)
        pick = itemgetter(*names) if len(names) > 1 else (lambda row, name=names[0]: (row[name],))
        converted = tuple(
            index for index, name in enumerate(names)
            if conn.dialect.name == "sqlite" and isinstance(done.binds[name].type, (DateTime, Numeric, NullType))
        )
        found = _COMPILED[(conn.dialect.name, *key)] = _Plain(str(done), pick, dict(done.params), converted)
    return found


def _executemany_plain(conn: Connection, statement, key: tuple, rows: list[dict]) -> None:
    """executemany of ``statement`` (compiled once per dialect and ``key``) over
    ``rows``, with values stored the way SQLAlchemy stores them; binds a row
    does not name take the statement's own values (e.g. ``locked_by=None``).
    asyncpg takes Python values as they are; SQLite gets datetimes as text."""
    if not rows:
        return
    plain = _plain(conn, statement, key)
    conn.exec_driver_sql(plain.sql, _parameters(plain, rows))


def _parameters(plain: _Plain, rows: list[dict]) -> list[tuple]:
    values = [plain.pick({**plain.own, **row}) for row in rows]
    if plain.converted:
        values = [_converted(value, plain.converted) for value in values]
    return values


def _converted(value: tuple, positions: tuple[int, ...]) -> tuple:
    value = list(value)
    for index in positions:
        value[index] = _sqlite_value(value[index])
    return tuple(value)


def _sqlite_value(value):
    if isinstance(value, datetime):
        # SQLAlchemy's SQLite DATETIME storage format, YYYY-MM-DD HH:MM:SS.ffffff (no offset)
        return value.isoformat(" ", "microseconds")[:26]
    if isinstance(value, Decimal):
        return float(value)
    return value


def release(conn: Connection, ids: list[int], worker: str, now: datetime,
                  state: str = "queued", due_at: datetime | None = None, reason: str | None = None) -> None:
    """Hand leased deliveries back to the queue unsent (pause, stop, night rule)."""
    if not ids:
        return
    values = {"state": state, "locked_by": None, "lease_until": None, "updated_at": now}
    if due_at is not None:
        values["due_at"] = due_at
    if reason is not None:
        values["last_error"] = reason
    conn.execute(
        update(deliveries).where(deliveries.c.id.in_(ids), deliveries.c.locked_by == worker).values(**values)
    )


def renew(conn: Connection, worker: str, lease_until: datetime) -> int:
    """Extend every lease ``worker`` holds (its jobs are still in memory)."""
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.locked_by == worker, deliveries.c.state == "sending")
        .values(lease_until=lease_until)
    )
    return result.rowcount


def release_all(conn: Connection, worker: str, now: datetime) -> int:
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.locked_by == worker, deliveries.c.state == "sending")
        .values(state="queued", locked_by=None, lease_until=None, updated_at=now)
    )
    return result.rowcount


async def cancel_unsent(conn: AsyncConnection, campaign_id: int, now: datetime) -> int:
    """Cancel every not-in-flight pending delivery of a campaign, each with its
    final CDR row (one INSERT … SELECT and one UPDATE, in the caller's transaction)."""
    waiting = (deliveries.c.campaign_id == campaign_id, deliveries.c.state.in_(CLAIMABLE_STATES))
    name = select(campaigns.c.name).where(campaigns.c.id == campaign_id).scalar_subquery()
    account = select(func.coalesce(campaigns.c.created_by, "")).where(campaigns.c.id == campaign_id).scalar_subquery()
    when = literal(now, type_=cdr.c.start.type)
    source = select(
        deliveries.c.id, deliveries.c.attempts + 1, literal(True), account, deliveries.c.recipient,
        deliveries.c.kind, deliveries.c.channel, literal("CANCEL"), literal("campaign cancelled"),
        when, when, literal(0), literal(0), literal("FAILED"), literal("BILLING"),
        cast(deliveries.c.id, String) + literal(".") + cast(deliveries.c.attempts + 1, String),
        deliveries.c.message_id, name, deliveries.c.channel, literal("cancelled"), literal(0),
    ).where(*waiting)
    columns = [
        "delivery_id", "attempt", "final", "accountcode", "dst", "dcontext", "channel", "lastapp", "lastdata",
        "start", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
        "source", "medium", "status_code", "cost",
    ]
    await conn.execute(insert(cdr).from_select(columns, source))
    result = await conn.execute(
        update(deliveries).where(*waiting).values(
            state="cancelled", finished_at=now, updated_at=now, last_error="campaign cancelled",
            locked_by=None, lease_until=None,
        )
    )
    return result.rowcount


async def next_due(conn: AsyncConnection) -> datetime | None:
    """When the earliest not-yet-due delivery becomes due (for the wake-up timer)."""
    earliest = None
    for state in CLAIMABLE_STATES:
        value = await conn.scalar(select(func.min(deliveries.c.due_at)).where(deliveries.c.state == state))
        if value is not None and (earliest is None or value < earliest):
            earliest = value
    return earliest


async def stats(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    """(state, channel, count) for the whole queue."""
    rows = await conn.execute(
        select(deliveries.c.state, deliveries.c.channel, func.count())
        .group_by(deliveries.c.state, deliveries.c.channel)
        .order_by(deliveries.c.state, deliveries.c.channel)
    )
    return [tuple(row) for row in rows]


async def get(conn: AsyncConnection, delivery_id: int) -> dict | None:
    row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
    return dict(row._mapping) if row else None
