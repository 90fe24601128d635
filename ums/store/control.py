"""Service control: what operators asked for (``service_state``) and what each
running process reports (``service_instances``, refreshed by heartbeats)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import service_instances, service_state
from . import utcnow


async def desired_states(conn: AsyncConnection) -> dict[str, str]:
    rows = await conn.execute(select(service_state.c.service, service_state.c.desired))
    return dict(rows.all())


async def set_desired(conn: AsyncConnection, service: str, desired: str, by: str) -> bool:
    """Record the operator's wish; returns False when it was already so."""
    states = await desired_states(conn)
    if states.get(service, "running") == desired:
        return False
    now = utcnow()
    if service in states:
        await conn.execute(
            update(service_state)
            .where(service_state.c.service == service)
            .values(desired=desired, changed_at=now, changed_by=by)
        )
    else:
        await conn.execute(
            insert(service_state).values(service=service, desired=desired, changed_at=now, changed_by=by)
        )
    return True


async def register_instance(
    conn: AsyncConnection, service: str, host: str, pid: int, address: str, state: str
) -> int:
    now = utcnow()
    result = await conn.execute(
        insert(service_instances).values(
            service=service, host=host, pid=pid, address=address, state=state,
            started_at=now, heartbeat_at=now,
        )
    )
    return result.inserted_primary_key[0]


async def heartbeat(conn: AsyncConnection, instance_id: int, state: str, info: dict) -> None:
    await conn.execute(
        update(service_instances)
        .where(service_instances.c.id == instance_id)
        .values(heartbeat_at=utcnow(), state=state, info=info)
    )


async def stop_requested(conn: AsyncConnection, instance_ids: list[int]) -> bool:
    """True when a stop has been requested for any of these instances (`ums stop`)."""
    found = await conn.scalar(
        select(service_instances.c.id)
        .where(service_instances.c.id.in_(instance_ids), service_instances.c.stop_requested)
        .limit(1)
    )
    return found is not None


async def remove_instance(conn: AsyncConnection, instance_id: int) -> None:
    await conn.execute(delete(service_instances).where(service_instances.c.id == instance_id))


async def instances(conn: AsyncConnection) -> list[dict]:
    rows = await conn.execute(select(service_instances).order_by(service_instances.c.id))
    return [dict(row._mapping) for row in rows]


async def request_stop(conn: AsyncConnection, host: str | None = None) -> list[dict]:
    """Flag instances (all, or one host's) to stop; returns the flagged rows."""
    query = update(service_instances).values(stop_requested=True)
    if host is not None:
        query = query.where(service_instances.c.host == host)
    await conn.execute(query)
    return await instances(conn)


async def forget_stale(conn: AsyncConnection, older_than: datetime) -> int:
    """Drop instance rows of processes that stopped heart-beating (killed, crashed)."""
    result = await conn.execute(
        delete(service_instances).where(service_instances.c.heartbeat_at < older_than)
    )
    return result.rowcount
