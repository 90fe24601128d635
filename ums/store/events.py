"""Events posted to EPS by back-office systems, and what became of them.

States: ``received`` (stored, not yet looked at), ``dispatched`` (a service
turned it into deliveries), ``held`` (its service is stopped; dispatched on
resume), ``unmatched`` (no service answers it), ``failed`` (a service matched
but nothing could be sent, e.g. unknown customer; ``error`` says why).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import deliveries, digest_events, events
from ..queue import rows as delivery_rows

SUMMARY_COLUMNS = (
    events.c.id, events.c.source_system, events.c.idempotency_key, events.c.event_type,
    events.c.customer_id, events.c.state, events.c.service_name, events.c.service_version,
    events.c.error, events.c.received_at, events.c.processed_at,
)


# The ingest writer's statements are plain (sync) functions taking a
# ``Connection``: EPS runs a whole batch in one call, in its own thread on
# SQLite, through ``AsyncConnection.run_sync`` on PostgreSQL.

def existing_ids(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Ids of events already stored under (source_system, idempotency_key)."""
    found: dict[tuple[str, str], int] = {}
    for start in range(0, len(keys), 400):
        chunk = keys[start:start + 400]
        rows = conn.execute(
            select(events.c.source_system, events.c.idempotency_key, events.c.id).where(
                tuple_(events.c.source_system, events.c.idempotency_key).in_(chunk)
            )
        )
        found.update({(row[0], row[1]): row[2] for row in rows})
    return found


def stored_under(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """The events already stored under (source_system, idempotency_key):
    their ``id``, ``event_type``, ``customer_id`` and ``payload``, so a retried
    post can be told from another event reusing the key."""
    found: dict[tuple[str, str], dict] = {}
    for start in range(0, len(keys), 400):
        chunk = keys[start:start + 400]
        rows = conn.execute(
            select(events.c.source_system, events.c.idempotency_key, events.c.id, events.c.event_type,
                   events.c.customer_id, events.c.payload).where(
                tuple_(events.c.source_system, events.c.idempotency_key).in_(chunk)
            )
        )
        found.update({(row.source_system, row.idempotency_key): dict(row._mapping) for row in rows})
    return found


def _insert_new_statement(dialect: str):
    """``INSERT .. ON CONFLICT (source_system, idempotency_key) DO NOTHING
    RETURNING`` for SQLite (3.35+) and PostgreSQL, built once per dialect."""
    statement = _INSERT_NEW.get(dialect)
    if statement is None:
        module = postgresql if dialect == "postgresql" else sqlite
        statement = _INSERT_NEW[dialect] = (
            module.insert(events)
            .on_conflict_do_nothing(index_elements=[events.c.source_system, events.c.idempotency_key])
            .returning(events.c.id, events.c.source_system, events.c.idempotency_key)
        )
    return statement


_INSERT_NEW: dict = {}


def insert_new(conn: Connection, rows: list[dict]) -> dict[tuple[str, str], int]:
    """Insert the events not stored yet, in one statement; returns the ids of
    those inserted, keyed by (source_system, idempotency_key). Rows whose key
    is already stored (a retried post) are skipped by the database itself, so
    two writers racing on one key still store it once."""
    if not rows:
        return {}
    result = conn.execute(_insert_new_statement(conn.dialect.name), rows)
    return {(row[1], row[2]): row[0] for row in result}


def queue_deliveries(conn: Connection, rows: list[dict]) -> None:
    """Insert many delivery rows built by :func:`ums.outbox.row_for` in one
    statement (the batch form of ``outbox.enqueue``, same rows)."""
    delivery_rows.insert_many(conn, rows)


#: ids are 64-bit on both databases; a larger number names no event
MAX_ID = 2**63 - 1


async def get(conn: AsyncConnection, event_id: int, source_system: str | None = None) -> dict | None:
    """The event ``event_id`` (of ``source_system`` only, when given), or None;
    also None for an id out of the database's range."""
    if not 0 < event_id <= MAX_ID:
        return None
    query = select(events).where(events.c.id == event_id)
    if source_system is not None:
        query = query.where(events.c.source_system == source_system)
    row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None


async def of_system(conn: AsyncConnection, event_ids: list[int], source_system: str) -> set[int]:
    """Those of ``event_ids`` that are events of ``source_system``."""
    found: set[int] = set()
    wanted = sorted({i for i in event_ids if i is not None})
    for start in range(0, len(wanted), 400):
        rows = await conn.execute(select(events.c.id).where(
            events.c.id.in_(wanted[start:start + 400]), events.c.source_system == source_system))
        found.update(row[0] for row in rows)
    return found


async def set_outcome(
    conn: AsyncConnection, event_id: int, state: str, now: datetime,
    service_name: str | None = None, service_version: int | None = None, error: str | None = None,
) -> None:
    await conn.execute(
        update(events).where(events.c.id == event_id).values(
            state=state, service_name=service_name, service_version=service_version,
            error=error, processed_at=now,
        )
    )


async def held_for(conn: AsyncConnection, service_name: str, limit: int = 500) -> list[dict]:
    """Held events of one service, oldest first; locked on PostgreSQL so two
    resumers never dispatch the same event."""
    query = (
        select(events)
        .where(events.c.state == "held", events.c.service_name == service_name)
        .order_by(events.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def held_service_names(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(
        select(events.c.service_name).where(events.c.state == "held").distinct()
    )
    return [row[0] for row in rows if row[0]]


async def recent(
    conn: AsyncConnection, state: str | None = None, limit: int = 50,
    customer_id: str | None = None,
) -> list[dict]:
    query = select(*SUMMARY_COLUMNS).order_by(events.c.id.desc()).limit(limit)
    if state:
        query = query.where(events.c.state == state)
    if customer_id:
        query = query.where(events.c.customer_id == customer_id)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def count_by_state(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(select(events.c.state, func.count()).group_by(events.c.state))
    return {row[0]: row[1] for row in rows}


async def deliveries_of(conn: AsyncConnection, event_id: int) -> list[dict]:
    """The deliveries an event made — its own, or the digest it joined (one
    delivery for all the events of its window, once the window closed)."""
    in_digest = select(digest_events.c.delivery_id).where(digest_events.c.event_id == event_id,
                                                          digest_events.c.delivery_id.is_not(None))
    rows = await conn.execute(
        select(
            deliveries.c.id, deliveries.c.channel, deliveries.c.recipient, deliveries.c.state,
            deliveries.c.template_name, deliveries.c.attempts, deliveries.c.last_code,
            deliveries.c.last_error, deliveries.c.fallback, deliveries.c.created_at,
            deliveries.c.finished_at,
        )
        .where(or_(deliveries.c.event_id == event_id, deliveries.c.id.in_(in_digest)))
        .order_by(deliveries.c.id)
    )
    return [dict(row._mapping) for row in rows]
