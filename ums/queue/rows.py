"""Delivery rows: the only code that builds and inserts them.

EPS dispatch (one event or a batch), one-off sends (``ums.outbox``), MAS
notifications, fallback to the next channel and campaign expansion all end
here, so every delivery starts the same way: ``queued``, due now unless
reserved, with its lane (:mod:`ums.queue.lanes`), a Message-ID by the one
rule (:mod:`ums.queue.message_ids`) and a per-delivery token. The caller's
transaction decides when the request is durable.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import insert, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import Time, contacts, deliveries
from ..security import time_ordered_key
from . import lanes, message_ids, wakeups
from .states import DeliveryState

if TYPE_CHECKING:
    from ..outbox import SendRequest

#: below EPS alerts (5): campaign deliveries go after transactional ones of their lane
CAMPAIGN_PRIORITY = 7


def build(request: "SendRequest", now: datetime) -> dict:
    """The row of one delivery request (already validated)."""
    return {
        "channel": request.channel,
        "recipient": request.recipient,
        "contact_id": request.contact_id,
        "campaign_id": request.campaign_id,
        "event_id": request.event_id,
        "service_name": request.service_name,
        "template_name": request.template,
        "kind": request.kind,
        "lane": lanes.settled(request.lane, request.kind, campaign=request.campaign_id is not None),
        "priority": request.priority,
        "state": DeliveryState.QUEUED.value,
        "due_at": request.due_at or now,
        "expires_at": request.expires_at,
        "message_id": message_ids.new(),
        "token": time_ordered_key(),
        "variables": request.variables,
        "fallback": request.fallback,
        "created_at": now,
        "updated_at": now,
    }


def insert_one(conn: Connection, row: dict) -> int:
    """Insert one row from :func:`build`; returns its id."""
    inserted = conn.execute(insert(deliveries).values(**row)).inserted_primary_key[0]
    wakeups.announce(conn, [row["lane"]])
    return inserted


def insert_many(conn: Connection, rows: list[dict]) -> None:
    """Insert many rows from :func:`build` in one statement (EPS's batches)."""
    if rows:
        conn.execute(insert(deliveries), rows)
        wakeups.announce(conn, {row["lane"] for row in rows})


async def insert_campaign(conn: AsyncConnection, campaign: dict, address, audience, now: datetime,
                          expires_at: datetime | None, domain: str | None = None) -> int:
    """One delivery per contact that ``audience`` (a WHERE clause on
    ``contacts``) selects, to its ``address`` column, as one INSERT … SELECT
    (memory stays flat whatever the audience size). Returns how many."""
    dialect = conn.dialect.name
    lane = lanes.settled(campaign.get("lane"), campaign["kind"], campaign=True)
    source = select(
        literal(campaign["channel"]), address, contacts.c.id,
        literal(campaign["id"]), literal(campaign["template_name"]), literal(campaign["kind"]), literal(lane),
        literal(CAMPAIGN_PRIORITY), literal(DeliveryState.QUEUED.value), literal(0), literal(now, type_=Time),
        literal(expires_at, type_=Time), message_ids.new_sql(dialect, domain),
        message_ids.time_ordered_hex_sql(dialect, 12), literal(now, type_=Time), literal(now, type_=Time),
    ).where(audience)
    columns = [
        "channel", "recipient", "contact_id", "campaign_id", "template_name", "kind", "lane", "priority", "state",
        "attempts", "due_at", "expires_at", "message_id", "token", "created_at", "updated_at",
    ]
    result = await conn.execute(insert(deliveries).from_select(columns, source))
    return result.rowcount
