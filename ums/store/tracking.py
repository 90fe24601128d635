"""Engagement tracking rows: the first open and the first click on each link
of each delivery (``tracking_events``, one row each: a recipient counts once
however often they open or click), and the site secrets every process reads
from the shared database (the HMAC key of tracking links).

Opens and clicks of test sends (:func:`ums.campaigns.test_send`) are kept
like any other but never counted: the counts join the campaign's own
deliveries, and a test delivery belongs to no campaign.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import campaigns, deliveries, site_secrets, tracking_events
from . import as_utc

OPEN, CLICK = "open", "click"


def _insert(conn: AsyncConnection, table):
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


async def secret(conn: AsyncConnection, name: str, make, now: datetime) -> str:
    """The site secret ``name``, created with ``make()`` the first time; when
    several processes race, all read the one that was stored first."""
    found = await conn.scalar(select(site_secrets.c.value).where(site_secrets.c.name == name))
    if found is not None:
        return found
    await conn.execute(_insert(conn, site_secrets).on_conflict_do_nothing(index_elements=[site_secrets.c.name])
                       .values(name=name, value=make(), created_at=now))
    return await conn.scalar(select(site_secrets.c.value).where(site_secrets.c.name == name))


async def record(conn: AsyncConnection, campaign_id: int, delivery_id: int, contact_id: int | None,
                 kind: str, link: str, url: str | None, now: datetime) -> bool:
    """Count an open (``link`` "") or a click on ``link``; False when this
    delivery had already opened, or clicked that link."""
    result = await conn.execute(
        _insert(conn, tracking_events).on_conflict_do_nothing(
            index_elements=[tracking_events.c.delivery_id, tracking_events.c.kind, tracking_events.c.link])
        .values(campaign_id=campaign_id, delivery_id=delivery_id, contact_id=contact_id, kind=kind,
                link=link, url=url, at=now)
    )
    return result.rowcount == 1


def _of_campaign(campaign_id: int):
    """The events of the campaign's own deliveries (never its test sends)."""
    return and_(tracking_events.c.campaign_id == campaign_id,
                tracking_events.c.delivery_id == deliveries.c.id,
                deliveries.c.campaign_id == campaign_id)


async def counts(conn: AsyncConnection, campaign_id: int) -> dict[str, int]:
    """``{"opened": recipients who opened, "clicked": (recipient, link) pairs clicked,
    "clickers": recipients who clicked at least once}``."""
    rows = await conn.execute(
        select(tracking_events.c.kind, func.count(), func.count(func.distinct(tracking_events.c.delivery_id)))
        .select_from(tracking_events.join(deliveries, tracking_events.c.delivery_id == deliveries.c.id))
        .where(_of_campaign(campaign_id)).group_by(tracking_events.c.kind)
    )
    found = {kind: (total, people) for kind, total, people in rows}
    return {"opened": found.get(OPEN, (0, 0))[1], "clicked": found.get(CLICK, (0, 0))[0],
            "clickers": found.get(CLICK, (0, 0))[1]}


async def moments(conn: AsyncConnection, campaign_id: int) -> list[tuple[datetime, str, str]]:
    """(when, channel, "opened" or "clicked") of each counted event, for the charts."""
    rows = await conn.execute(
        select(tracking_events.c.at, deliveries.c.channel, tracking_events.c.kind)
        .select_from(tracking_events.join(deliveries, tracking_events.c.delivery_id == deliveries.c.id))
        .where(_of_campaign(campaign_id))
    )
    return [(as_utc(at), channel, "opened" if kind == OPEN else "clicked") for at, channel, kind in rows]


async def tracked_campaigns(conn: AsyncConnection) -> dict[str, int]:
    """Name → id of every campaign with tracking on."""
    rows = await conn.execute(select(campaigns.c.name, campaigns.c.id).where(campaigns.c.tracking.is_(True)))
    return dict(rows.all())


async def for_contact(conn: AsyncConnection, contact_id: int, limit: int) -> list[dict]:
    """The contact's opens and clicks, newest first, with the campaign's name
    (None for a journey's email)."""
    rows = await conn.execute(
        select(tracking_events.c.id, tracking_events.c.kind, tracking_events.c.url, tracking_events.c.at,
               tracking_events.c.delivery_id, tracking_events.c.campaign_id, campaigns.c.name)
        .select_from(tracking_events.outerjoin(campaigns, campaigns.c.id == tracking_events.c.campaign_id))
        .where(tracking_events.c.contact_id == contact_id)
        .order_by(tracking_events.c.id.desc()).limit(limit)
    )
    return [
        {"at": as_utc(row.at), "kind": row.kind, "id": row.id,
         "url": row.url, "delivery_id": row.delivery_id, "campaign_id": row.campaign_id, "campaign": row.name}
        for row in rows
    ]
