"""The EPS service registry: versioned service definitions and their state.

Registering a name that exists adds a new version; the newest version of a
name is the one in force. State (active, stopped, removed) is kept on every
version of a name alike, so the newest row always tells the truth.

``system`` is the back-office system that owns a service (its API keys manage
it); NULL for one an operator registered. The newest row tells the owner.
Functions taking ``system`` read every service when it is None (the operator's
view) and only that system's services otherwise.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import eps_services

LIVE_STATES = ("active", "stopped")


def _latest_versions():
    return (
        select(eps_services.c.name, func.max(eps_services.c.version).label("version"))
        .group_by(eps_services.c.name)
        .subquery()
    )


def _latest_rows():
    latest = _latest_versions()
    return select(eps_services).join(
        latest,
        (eps_services.c.name == latest.c.name) & (eps_services.c.version == latest.c.version),
    )


async def register(
    conn: AsyncConnection, name: str, event_type: str, kind: str, priority: int,
    definition: dict, now: datetime, created_by: str | None = None, system: str | None = None,
) -> int:
    """Store a new version of ``name`` (active), owned by ``system`` (None: an
    operator's); returns its version number."""
    current = await conn.scalar(
        select(func.max(eps_services.c.version)).where(eps_services.c.name == name)
    )
    version = (current or 0) + 1
    await conn.execute(
        eps_services.insert().values(
            name=name, version=version, event_type=event_type, state="active", kind=kind,
            priority=priority, definition=definition, created_at=now, created_by=created_by,
            system=system,
        )
    )
    return version


async def get(conn: AsyncConnection, name: str) -> dict | None:
    """The version in force of ``name`` (also when stopped or removed)."""
    row = (
        await conn.execute(
            select(eps_services)
            .where(eps_services.c.name == name)
            .order_by(eps_services.c.version.desc())
            .limit(1)
        )
    ).first()
    return dict(row._mapping) if row else None


async def versions(conn: AsyncConnection, name: str) -> list[dict]:
    rows = await conn.execute(
        select(eps_services).where(eps_services.c.name == name).order_by(eps_services.c.version)
    )
    return [dict(row._mapping) for row in rows]


async def list_services(
    conn: AsyncConnection, include_removed: bool = False, system: str | None = None,
) -> list[dict]:
    """The version in force of every service (of ``system``'s only, when given)."""
    query = _latest_rows().order_by(eps_services.c.name)
    if system is not None:
        query = query.where(eps_services.c.system == system)
    if not include_removed:
        query = query.where(eps_services.c.state.in_(LIVE_STATES))
    return [dict(row._mapping) for row in await conn.execute(query)]


#: built once: this runs for every batch of incoming events
_FOR_EVENT_TYPES = _latest_rows().where(
    eps_services.c.event_type.in_(bindparam("event_types", expanding=True)),
    eps_services.c.state.in_(LIVE_STATES),
)


def for_event_types(conn: Connection, event_types: set[str]) -> list[dict]:
    """Live (active or stopped) services answering any of ``event_types``
    (sync: the EPS ingest writer runs a whole batch in one call)."""
    rows = conn.execute(_FOR_EVENT_TYPES, {"event_types": sorted(event_types)})
    return [dict(row._mapping) for row in rows]


async def set_state(conn: AsyncConnection, name: str, state: str) -> bool:
    """Set the state of every version of ``name``; False when there is no such name."""
    result = await conn.execute(
        update(eps_services).where(eps_services.c.name == name).values(state=state)
    )
    return result.rowcount > 0


async def active_names(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(
        _latest_rows().with_only_columns(eps_services.c.name).where(eps_services.c.state == "active")
    )
    return [row[0] for row in rows]
