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

from datetime import datetime
from decimal import Decimal
from operator import itemgetter

from sqlalchemy import DateTime, Numeric, String, cast, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..clock import to_utc
from ..db.models import UtcTime, campaigns, cdr, deliveries
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


async def pending_holds(conn: AsyncConnection, campaign_id: int | None = None) -> list[tuple]:
    """``(state, hold, count, earliest due_at, a last_error, campaign state)``
    of pending deliveries (one campaign's, or the whole queue's), for
    :func:`ums.holds.summarise`."""
    query = (
        select(deliveries.c.state, deliveries.c.hold, func.count(), func.min(deliveries.c.due_at),
               func.max(deliveries.c.last_error), campaigns.c.state)
        .select_from(deliveries.outerjoin(campaigns, campaigns.c.id == deliveries.c.campaign_id))
        .where(deliveries.c.state.in_(PENDING_STATES))
        .group_by(deliveries.c.state, deliveries.c.hold, campaigns.c.state)
    )
    if campaign_id is not None:
        query = query.where(deliveries.c.campaign_id == campaign_id)
    return [tuple(row) for row in await conn.execute(query)]


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


def finish(conn: Connection, changes: list[dict], cdr_rows: list[dict]) -> None:
    """Write many state changes and their CDR rows (the caller checked
    ownership with :func:`owned` in this same transaction).

    Each change has b_id, b_state, b_attempts, b_due_at, b_code, b_error,
    b_finished, b_now: the delivery leaves its lease with that state; a code
    and error that a bounce (MAS) recorded first are kept. CDR rows are as
    :func:`ums.cdr.attempt_row` builds them (all with the same keys)."""
    # the hot path of a campaign: each chunk of rows is ONE statement, built once
    # per shape, with rows passed as plain values (SQLAlchemy's per-row parameter
    # processing costs more than the database's own work). Per row, SQLite's
    # executemany steps once (each step hands the interpreter lock away and waits
    # to get it back) and PostgreSQL plans and executes once.
    if not changes and not cdr_rows:
        return
    postgresql = conn.dialect.name == "postgresql"
    if changes:
        if postgresql:
            conn.exec_driver_sql(_FINISH_POSTGRESQL.format(rows=_unnest(conn, deliveries, _FINISH_COLUMNS)),
                                 _column_lists(changes, _FINISH_NAMES))
        else:
            _finish_sqlite(conn, changes)
    if cdr_rows:
        columns = tuple(cdr_rows[0])
        if postgresql:
            _insert_postgresql(conn, cdr, columns, cdr_rows)
        else:
            _insert_sqlite(conn, cdr, columns, cdr_rows)


#: :func:`finish` on SQLite (which names VALUES columns column1, column2, …)
_FINISH_SQLITE = (
    "UPDATE deliveries SET state = v.column2, attempts = v.column3, due_at = v.column4, "
    "last_code = CASE WHEN deliveries.bounced_at IS NULL THEN v.column5 ELSE deliveries.last_code END, "
    "last_error = CASE WHEN deliveries.bounced_at IS NULL THEN v.column6 ELSE deliveries.last_error END, "
    "finished_at = v.column7, updated_at = v.column8, hold = v.column9, locked_by = NULL, lease_until = NULL "
    "FROM (VALUES {rows}) AS v WHERE deliveries.id = v.column1"
)
#: :func:`finish` on PostgreSQL: one array per column, unnested into rows
_FINISH_POSTGRESQL = (
    "UPDATE deliveries SET state = v.state, attempts = v.attempts, due_at = v.due_at, "
    "last_code = CASE WHEN deliveries.bounced_at IS NULL THEN v.last_code ELSE deliveries.last_code END, "
    "last_error = CASE WHEN deliveries.bounced_at IS NULL THEN v.last_error ELSE deliveries.last_error END, "
    "finished_at = v.finished_at, updated_at = v.updated_at, hold = v.hold, locked_by = NULL, lease_until = NULL "
    "FROM {rows} WHERE deliveries.id = v.id"
)
#: the deliveries column each of :data:`_FINISH_NAMES` sets (and has the type of)
_FINISH_COLUMNS = ("id", "state", "attempts", "due_at", "last_code", "last_error", "finished_at", "updated_at",
                   "hold")
_FINISH_NAMES = ("b_id", "b_state", "b_attempts", "b_due_at", "b_code", "b_error", "b_finished", "b_now",
                 "b_hold")
#: SQLite takes at most 32766 parameters per statement
_SQLITE_PARAMETERS = 32000


def _finish_sqlite(conn: Connection, changes: list[dict]) -> None:
    _execute_rows_sqlite(conn, _FINISH_SQLITE, changes, _FINISH_NAMES,
                         _converted_positions(deliveries, _FINISH_COLUMNS))


def _insert_sqlite(conn: Connection, table, columns: tuple[str, ...], rows: list[dict]) -> None:
    """A multi-row INSERT … VALUES (…), (…) per chunk of ``rows``."""
    quote = conn.dialect.identifier_preparer.quote
    _execute_rows_sqlite(conn, f"INSERT INTO {table.name} ({', '.join(map(quote, columns))}) VALUES {{rows}}",
                         rows, columns, _converted_positions(table, columns))


def _execute_rows_sqlite(conn: Connection, sql: str, rows: list[dict], names: tuple[str, ...],
                         converted: tuple[int, ...]) -> None:
    """``sql`` with ``{rows}`` as one ``(?, …)`` group per row (the values of
    ``names``), in chunks within SQLite's parameter limit; the ``converted``
    positions are stored the way SQLAlchemy stores them."""
    pick = itemgetter(*names)
    values = [_converted(pick(row), converted) for row in rows]
    group = "(" + ", ".join(["?"] * len(names)) + ")"
    for chunk in _chunks(values, _SQLITE_PARAMETERS // len(names)):
        conn.exec_driver_sql(sql.format(rows=", ".join([group] * len(chunk))),
                             tuple(value for row in chunk for value in row))


def _converted_positions(table, columns: tuple[str, ...]) -> tuple[int, ...]:
    """Positions of ``columns`` whose values SQLite is given converted (datetimes
    as SQLAlchemy's text, decimals as floats: see :func:`_sqlite_value`)."""
    return tuple(index for index, name in enumerate(columns) if isinstance(table.c[name].type, (UtcTime, DateTime, Numeric)))


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _insert_postgresql(conn: Connection, table, columns: tuple[str, ...], rows: list[dict]) -> None:
    """One INSERT … SELECT of unnested column arrays for all ``rows``."""
    quote = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({', '.join(map(quote, columns))}) SELECT * FROM {_unnest(conn, table, columns)}",
        _column_lists(rows, columns),
    )


def _unnest(conn: Connection, table, columns: tuple[str, ...]) -> str:
    """``unnest($1::type[], …) AS v(columns)``: rows from one array parameter
    per column, each typed like ``table``'s column."""
    key = ("unnest", table.name, columns)
    found = _UNNEST.get(key)
    if found is None:
        quote = conn.dialect.identifier_preparer.quote
        arrays = ", ".join(f"${number}::{table.c[name].type.compile(conn.dialect)}[]"
                           for number, name in enumerate(columns, 1))
        found = _UNNEST[key] = f"unnest({arrays}) AS v({', '.join(map(quote, columns))})"
    return found


_UNNEST: dict[tuple, str] = {}


def _column_lists(rows: list[dict], names: tuple[str, ...]) -> tuple[list, ...]:
    return tuple([row[name] for row in rows] for name in names)


def _converted(value: tuple, positions: tuple[int, ...]) -> tuple:
    value = list(value)
    for index in positions:
        value[index] = _sqlite_value(value[index])
    return tuple(value)


def _sqlite_value(value):
    if isinstance(value, datetime):
        # what UtcTime stores on SQLite: UTC as YYYY-MM-DD HH:MM:SS.ffffff (no offset)
        return to_utc(value).isoformat(" ", "microseconds")[:26]
    if isinstance(value, Decimal):
        return float(value)
    return value


def release(conn: Connection, ids: list[int], worker: str, now: datetime, state: str = "queued",
            due_at: datetime | None = None, reason: str | None = None, hold: str | None = None) -> None:
    """Hand leased deliveries back to the queue unsent (pause, stop, night rule),
    saying why (``hold``, a :class:`ums.holds.Hold` value, and ``reason``) and
    until when (``due_at``)."""
    if not ids:
        return
    values = {"state": state, "locked_by": None, "lease_until": None, "updated_at": now, "hold": hold}
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
        .values(state="queued", locked_by=None, lease_until=None, updated_at=now, hold=None)
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
