"""The live service registry: register, stop, resume, remove.

Used alike by ``ums service …`` and ``/v1/services``. The running server reads
the registry in the same transaction as each batch of events, so a change is
in force for every event stored after it commits — no restart, no reload.
Resuming a service dispatches the events held while it was stopped, in the
same transaction as the state change, so each is dispatched exactly once.
"""

from __future__ import annotations

from datetime import datetime

from ums.errors import UmsError
from ums.store import events as event_store
from ums.store import services as service_store

from . import dispatch
from .definitions import ServiceDefinition


class NoSuchService(UmsError):
    """No EPS service named {name!r}."""


async def register(conn, definition: ServiceDefinition, now: datetime, by: str | None = None) -> int:
    """Store a definition as the new version of its name; returns the version."""
    return await service_store.register(
        conn, definition.name, definition.event_type, definition.kind, definition.priority,
        definition.as_dict(), now, by,
    )


async def stop(conn, name: str) -> None:
    await _existing(conn, name)
    await service_store.set_state(conn, name, "stopped")


async def resume(conn, name: str, now: datetime) -> int:
    """Make ``name`` active and dispatch what it held; returns how many."""
    await _existing(conn, name)
    await service_store.set_state(conn, name, "active")
    return await dispatch_held(conn, name, now)


async def remove(conn, name: str, now: datetime) -> int:
    """Remove ``name``; its held events become unmatched (kept, visible). Returns how many."""
    await _existing(conn, name)
    await service_store.set_state(conn, name, "removed")
    released = 0
    while batch := await event_store.held_for(conn, name):
        for event in batch:
            await event_store.set_outcome(conn, event["id"], "unmatched", now,
                                          error=f"service {name} was removed while the event was held")
        released += len(batch)
    return released


async def dispatch_held(conn, name: str, now: datetime) -> int:
    row = await service_store.get(conn, name)
    if row is None or row["state"] != "active":
        return 0
    service = dispatch.live_service(row)
    count = 0
    contacts: dict = {}
    while batch := await event_store.held_for(conn, name):
        for event in batch:
            plan = await dispatch.plan(conn, service, event["event_type"], event["customer_id"] or "",
                                       event["payload"] or {}, contacts)
            await event_store.set_outcome(conn, event["id"], plan.state, now, service.name,
                                          service.version, plan.error)
            await dispatch.carry_out(conn, plan, event["id"], now)
        count += len(batch)
    return count


async def _existing(conn, name: str) -> dict:
    row = await service_store.get(conn, name)
    if row is None or row["state"] == "removed":
        raise NoSuchService(name=name)
    return row
