"""The single customer view: everything that happened with one customer —
events about them, deliveries to them (every channel, with outcome and CDR
attempts), their opens and clicks of tracked campaigns (each counted once,
the first time), inbound messages from them, their consent records (each
change made on the preference centre among them) and their journeys (entry,
each step and its outcome: the channel a send used, the case a branch took,
how the journey ended) — in time order."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import cdr, deliveries, events, mailbox_messages
from . import as_utc
from . import contacts as contact_store
from . import journeys as journey_store
from . import preferences
from . import tracking


async def for_customer(conn: AsyncConnection, customer_id: str, limit: int = 500) -> dict | None:
    """``{"contact": {...}, "entries": [...]}`` or None for an unknown customer.

    Each entry has ``at`` (UTC), ``kind`` (event, journey, delivery, open,
    click, inbound, consent) and its details; a journey entry has
    ``journey``, ``step``, ``action`` (entered, send, wait, branch, exit,
    goal, completed, refused, stopped), ``outcome`` and ``delivery_id``.
    """
    contact = await contact_store.by_customer_id(conn, customer_id)
    if contact is None:
        return None
    entries = (
        await _events(conn, customer_id, limit)
        + await _deliveries(conn, contact["id"], limit)
        + await _inbound(conn, contact["id"], limit)
        + await tracking.for_contact(conn, contact["id"], limit)
        + await _consents(conn, contact["id"], limit)
        + await journey_store.for_contact(conn, contact["id"], limit)
    )
    entries.sort(key=lambda entry: (entry["at"], _ORDER[entry["kind"]], entry["id"]))
    public = {k: contact[k] for k in ("id", "customer_id", "name", "email", "fax", "phone", "grade")}
    return {"contact": public, "entries": entries[-limit:]}


#: at one instant: the event, then the journey step it started, then the delivery that step made…
_ORDER = {"event": 0, "journey": 1, "delivery": 2, "open": 3, "click": 4, "inbound": 5, "consent": 6}


async def _events(conn, customer_id: str, limit: int) -> list[dict]:
    rows = await conn.execute(
        select(events.c.id, events.c.event_type, events.c.state, events.c.service_name,
               events.c.source_system, events.c.error, events.c.received_at, events.c.payload)
        .where(events.c.customer_id == customer_id)
        .order_by(events.c.id.desc()).limit(limit)
    )
    return [
        {"at": as_utc(row.received_at), "kind": "event", "id": row.id, "type": row.event_type,
         "state": row.state, "service": row.service_name, "source": row.source_system,
         "error": row.error, "data": row.payload}
        for row in rows
    ]


async def _deliveries(conn, contact_id: int, limit: int) -> list[dict]:
    rows = list(await conn.execute(
        select(deliveries.c.id, deliveries.c.channel, deliveries.c.recipient, deliveries.c.state,
               deliveries.c.event_id, deliveries.c.campaign_id, deliveries.c.service_name,
               deliveries.c.template_name, deliveries.c.attempts, deliveries.c.last_code,
               deliveries.c.last_error, deliveries.c.bounced_at, deliveries.c.created_at,
               deliveries.c.finished_at, deliveries.c.hold, deliveries.c.due_at)
        .where(deliveries.c.contact_id == contact_id)
        .order_by(deliveries.c.id.desc()).limit(limit)
    ))
    attempts = await _attempts(conn, [row.id for row in rows])
    return [
        {"at": as_utc(row.created_at), "kind": "delivery", "id": row.id, "channel": row.channel,
         "recipient": row.recipient, "state": row.state, "event_id": row.event_id,
         "campaign_id": row.campaign_id, "service": row.service_name, "template": row.template_name,
         "attempts": row.attempts, "last_code": row.last_code, "last_error": row.last_error,
         "bounced_at": as_utc(row.bounced_at), "finished_at": as_utc(row.finished_at),
         "hold": row.hold, "due_at": as_utc(row.due_at), "cdr": attempts.get(row.id, [])}
        for row in rows
    ]


async def _attempts(conn, delivery_ids: list[int]) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    for start in range(0, len(delivery_ids), 400):
        rows = await conn.execute(
            select(cdr.c.delivery_id, cdr.c.attempt, cdr.c.final, cdr.c.disposition,
                   cdr.c.status_code, cdr.c.start, cdr.c.medium)
            .where(cdr.c.delivery_id.in_(delivery_ids[start:start + 400]))
            .order_by(cdr.c.delivery_id, cdr.c.attempt)
        )
        for row in rows:
            found.setdefault(row.delivery_id, []).append(
                {"attempt": row.attempt, "final": row.final, "disposition": row.disposition,
                 "status_code": row.status_code, "start": as_utc(row.start), "medium": row.medium}
            )
    return found


async def _inbound(conn, contact_id: int, limit: int) -> list[dict]:
    rows = await conn.execute(
        select(mailbox_messages.c.id, mailbox_messages.c.media, mailbox_messages.c.classification,
               mailbox_messages.c.sender, mailbox_messages.c.subject, mailbox_messages.c.folder,
               mailbox_messages.c.delivery_id, mailbox_messages.c.received_at)
        .where(mailbox_messages.c.contact_id == contact_id)
        .order_by(mailbox_messages.c.id.desc()).limit(limit)
    )
    return [
        {"at": as_utc(row.received_at), "kind": "inbound", "id": row.id, "media": row.media,
         "classification": row.classification, "sender": row.sender, "subject": row.subject,
         "folder": row.folder, "delivery_id": row.delivery_id}
        for row in rows
    ]


async def _consents(conn, contact_id: int, limit: int) -> list[dict]:
    return [
        {"at": record["recorded_at"], "kind": "consent", "id": record["id"], "channel": record["channel"],
         "purpose": record["purpose"], "granted": record["granted"], "night_time": record["night_time"],
         "source": record["source"]}
        for record in await preferences.consent_records(conn, contact_id, limit)
    ]
