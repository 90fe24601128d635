"""The live service registry: register, stop, resume, remove.

Used alike by ``ums service …`` and ``/v1/services``. The running server reads
the registry in the same transaction as each batch of events, so a change is
in force for every event stored after it commits — no restart, no reload.
Resuming a service dispatches the events held while it was stopped, in the
same transaction as the state change, so each is dispatched exactly once.

Ownership: every function takes ``system``, the back-office system acting
(None for an operator, who manages every service). A system registers a name
that is free (never registered, or removed) or its own — the service is then
its own; it stops, resumes and removes only its own services, and another
owner's service is :class:`NoSuchService` to it, exactly like a missing one.
An operator re-registering a live service keeps its owner.
"""

from __future__ import annotations

from datetime import datetime

from ums.errors import UmsError
from ums.store import events as event_store
from ums.store import services as service_store

from . import digests, dispatch
from .definitions import ServiceDefinition


class NoSuchService(UmsError):
    """No EPS service named {name!r}."""


class ServiceNameTaken(UmsError):
    """The service name {name!r} belongs to another owner; register under another name."""


async def register(conn, definition: ServiceDefinition, now: datetime, by: str | None = None,
                   system: str | None = None) -> int:
    """Store a definition as the new version of its name; returns the version."""
    current = await service_store.get(conn, definition.name)
    owner = current["system"] if current is not None and current["state"] != "removed" else None
    if system is None:
        system = owner
    elif current is not None and current["state"] != "removed" and owner != system:
        raise ServiceNameTaken(name=definition.name)
    return await service_store.register(
        conn, definition.name, definition.event_type, definition.kind, definition.priority,
        definition.as_dict(), now, by, system,
    )


async def get(conn, name: str, system: str | None = None) -> dict:
    """The version in force of a live service ``system`` may see."""
    return await _existing(conn, name, system)


async def stop(conn, name: str, system: str | None = None) -> None:
    await _existing(conn, name, system)
    await service_store.set_state(conn, name, "stopped")


async def resume(conn, name: str, now: datetime, system: str | None = None) -> int:
    """Make ``name`` active and dispatch what it held; returns how many."""
    await _existing(conn, name, system)
    await service_store.set_state(conn, name, "active")
    return await dispatch_held(conn, name, now)


async def remove(conn, name: str, now: datetime, system: str | None = None) -> int:
    """Remove ``name``; its held events become unmatched (kept, visible). Returns how many."""
    await _existing(conn, name, system)
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
            if digests.is_digest(plan):
                await conn.run_sync(digests.collect, [(plan, event["id"])], now)
            else:
                await dispatch.carry_out(conn, plan, event["id"], now)
        count += len(batch)
    return count


async def _existing(conn, name: str, system: str | None = None) -> dict:
    row = await service_store.get(conn, name)
    if row is None or row["state"] == "removed" or (system is not None and row["system"] != system):
        raise NoSuchService(name=name)
    return row
