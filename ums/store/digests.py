"""Events of digest services waiting for their window to close
(:mod:`ums.event_services.digests` decides; this module only reads and writes
``digest_events``). Sync functions of the caller's ``Connection``: EPS
collects inside its ingest batch and releases inside one transaction that
also queues the delivery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select, tuple_, update
from sqlalchemy.engine import Connection

from ..db.models import digest_events
from . import as_dicts, as_utc

c = digest_events.c


def open_windows(conn: Connection, keys: list[tuple[str, int]], now: datetime) -> dict[tuple[str, int], datetime]:
    """For each ``(service name, contact id)``, when its open window (one with
    unreleased events, closing after ``now``) closes; keys with none are left out."""
    if not keys:
        return {}
    query = (
        select(c.service_name, c.contact_id, func.max(c.window_ends_at))
        .where(tuple_(c.service_name, c.contact_id).in_(sorted(set(keys))), c.released_at.is_(None),
               c.window_ends_at > now)
        .group_by(c.service_name, c.contact_id)
    )
    return {(name, contact_id): as_utc(ends) for name, contact_id, ends in conn.execute(query)}


def add(conn: Connection, rows: list[dict]) -> None:
    if rows:
        conn.execute(insert(digest_events), rows)


def due(conn: Connection, now: datetime, limit: int) -> list[dict]:
    """Unreleased events whose window closed by ``now``, by window and customer
    (locked, skipping rows another releaser holds, on PostgreSQL)."""
    query = (
        select(digest_events)
        .where(c.released_at.is_(None), c.window_ends_at <= now)
        .order_by(c.window_ends_at, c.service_name, c.contact_id, c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return as_dicts(conn.execute(query))


def mark_released(conn: Connection, ids: list[int], delivery_id: int, now: datetime) -> None:
    conn.execute(update(digest_events).where(c.id.in_(ids), c.released_at.is_(None))
                 .values(released_at=now, delivery_id=delivery_id))
