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

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import campaigns, deliveries
from ..holds import HOLDING_CAMPAIGN_STATES
from ..queue import bulk, lanes, records
from ..queue.states import CLAIMABLE_STATES, FINAL_STATES, PENDING_STATES, DeliveryState, StateChange
from . import as_dicts

__all__ = ["CLAIMABLE_STATES", "FINAL_STATES", "PENDING_STATES", "HOLDING_CAMPAIGN_STATES"]
SENDING = DeliveryState.SENDING.value


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
    channels: list[str] | None = None, lanes_wanted: tuple[str, ...] = lanes.ORDER,
) -> list[dict]:
    """Lease up to ``limit`` due deliveries to ``worker`` and return them.

    Lane by lane, highest first (``lanes_wanted``, in :data:`ums.queue.lanes.ORDER`):
    expired leases (a worker that died mid-send) are claimed first, then, in
    each lane, retries, deliveries that waited for the night to end, and new
    ones — each in due order, so the claim index (state, lane, due_at) is
    walked, never sorted. Only deliveries for ``channels`` (those this worker
    could load) are taken.
    """
    ids: list[int] = []
    served = deliveries.c.channel.in_(channels) if channels is not None else deliveries.c.channel.is_not(None)
    in_lanes = deliveries.c.lane.in_(lanes_wanted)
    stale = select(deliveries.c.id).where(
        deliveries.c.state == SENDING, deliveries.c.lease_until < now, served, in_lanes
    ).limit(limit)
    ids += _claimable_ids(conn, stale)
    for lane in lanes_wanted:
        for state in CLAIMABLE_STATES:
            if len(ids) >= limit:
                break
            due = (
                select(deliveries.c.id)
                .where(deliveries.c.state == state, deliveries.c.lane == lane, deliveries.c.due_at <= now,
                       _not_held(), served)
                .order_by(deliveries.c.due_at)
                .limit(limit - len(ids))
            )
            ids += _claimable_ids(conn, due)
    if not ids:
        return []
    rows = conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids))
        .values(state=SENDING, locked_by=worker, lease_until=lease_until, updated_at=now)
        .returning(*deliveries.c)
    )
    return as_dicts(rows)


async def priority_due(conn: AsyncConnection, now: datetime, channels: list[str]) -> bool:
    """Whether an urgent or notice delivery for ``channels`` is due and
    unclaimed — one read on the claim index, cheap enough to ask many times
    a second (PASS's priority claimer)."""
    found = await conn.scalar(
        select(deliveries.c.id).where(deliveries.c.state.in_(CLAIMABLE_STATES), deliveries.c.lane.in_(lanes.PRIORITY),
                                      deliveries.c.due_at <= now, deliveries.c.channel.in_(channels),
                                      _not_held()).limit(1))
    return found is not None


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


def finish(conn: Connection, changes: list[StateChange], cdr_rows: list[dict]) -> None:
    """Write many state changes and their CDR rows (the caller checked
    ownership with :func:`owned` in this same transaction).

    Each delivery leaves its lease with its change's state; a code and error
    that a bounce (MAS) recorded first are kept. CDR rows are as
    :func:`ums.queue.records.attempt_row` builds them (all with the same keys)."""
    if changes:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(_FINISH_POSTGRESQL.format(rows=bulk.unnest(conn, deliveries, _FINISH_COLUMNS)),
                                 bulk.column_lists(changes, len(_FINISH_COLUMNS)))
        else:
            bulk.execute_rows_sqlite(conn, _FINISH_SQLITE, changes,
                                     bulk.converted_positions(deliveries, _FINISH_COLUMNS))
    records.insert(conn, cdr_rows)


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
#: the deliveries column each field of :class:`StateChange` sets (and has the type of)
_FINISH_COLUMNS = ("id", "state", "attempts", "due_at", "last_code", "last_error", "finished_at", "updated_at",
                   "hold")


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


def mark_advertising(conn: Connection, ids: list[int]) -> None:
    """Store the kind PASS settled for deliveries of an advertising template
    queued as something else (:func:`ums.outbox.settled_kind`)."""
    conn.execute(update(deliveries).where(deliveries.c.id.in_(ids)).values(kind="advertising"))


def renew(conn: Connection, worker: str, lease_until: datetime) -> int:
    """Extend every lease ``worker`` holds (its jobs are still in memory)."""
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.locked_by == worker, deliveries.c.state == SENDING)
        .values(lease_until=lease_until)
    )
    return result.rowcount


def release_all(conn: Connection, worker: str, now: datetime) -> int:
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.locked_by == worker, deliveries.c.state == SENDING)
        .values(state=DeliveryState.QUEUED.value, locked_by=None, lease_until=None, updated_at=now, hold=None)
    )
    return result.rowcount


async def cancel_unsent(conn: AsyncConnection, campaign_id: int, now: datetime) -> int:
    """Cancel every not-in-flight pending delivery of a campaign, each with its
    final CDR row (one INSERT … SELECT and one UPDATE, in the caller's transaction)."""
    waiting = (deliveries.c.campaign_id == campaign_id, deliveries.c.state.in_(CLAIMABLE_STATES))
    await records.insert_cancelled(conn, campaign_id, now, waiting)
    result = await conn.execute(
        update(deliveries).where(*waiting).values(
            state=DeliveryState.CANCELLED.value, finished_at=now, updated_at=now, last_error="campaign cancelled",
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


async def pending_by_lane(conn: AsyncConnection) -> dict[str, int]:
    """Pending deliveries per lane, every lane named (0 when empty)."""
    rows = await conn.execute(
        select(deliveries.c.lane, func.count())
        .where(deliveries.c.state.in_(PENDING_STATES))
        .group_by(deliveries.c.lane)
    )
    found = {lane: 0 for lane in lanes.ORDER}
    found.update({lane: count for lane, count in rows})
    return found


async def get(conn: AsyncConnection, delivery_id: int) -> dict | None:
    row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
    return dict(row._mapping) if row else None
