"""Campaigns: their rows, state changes, expansion of the audience into
deliveries (in batches, straight inside the database), progress counts, and
what the pre-send check, clone, delete and the statistics read."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import (address_book_entries, address_books, campaigns, cdr, contacts, deliveries,
                         suppressions, tracking_events)
from ..queue import rows
from ..queue.states import PENDING_STATES
from . import addressbooks, as_utc

#: contact columns a segment filter may name
SEGMENT_FIELDS = ("grade", "locale", "timezone", "customer_id", "name")
ADDRESS_COLUMN = {"email": contacts.c.email, "fax": contacts.c.fax, "voice": contacts.c.phone}


async def insert_campaign(conn: AsyncConnection, **values) -> int:
    result = await conn.execute(insert(campaigns).values(**values))
    return result.inserted_primary_key[0]


async def get(conn: AsyncConnection, campaign_id: int) -> dict | None:
    row = (await conn.execute(select(campaigns).where(campaigns.c.id == campaign_id))).first()
    return dict(row._mapping) if row else None


async def by_name(conn: AsyncConnection, name: str) -> dict | None:
    row = (await conn.execute(select(campaigns).where(campaigns.c.name == name))).first()
    return dict(row._mapping) if row else None


async def list_all(conn: AsyncConnection, limit: int = 200) -> list[dict]:
    rows = await conn.execute(select(campaigns).order_by(campaigns.c.id.desc()).limit(limit))
    return [dict(row._mapping) for row in rows]


async def in_states(conn: AsyncConnection, wanted: tuple[str, ...]) -> list[dict]:
    """Every campaign in one of the ``wanted`` states, oldest first."""
    rows = await conn.execute(select(campaigns).where(campaigns.c.state.in_(wanted)).order_by(campaigns.c.id))
    return [dict(row._mapping) for row in rows]


async def set_state(
    conn: AsyncConnection, campaign_id: int, new: str, allowed_from: tuple[str, ...], **values
) -> bool:
    """Move a campaign to ``new`` if it is in one of ``allowed_from``; False otherwise.

    The WHERE on the old state makes the change safe when several processes
    race for it (only one sees rowcount 1)."""
    result = await conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.state.in_(allowed_from))
        .values(state=new, **values)
    )
    return result.rowcount == 1


async def states(conn: AsyncConnection, campaign_ids) -> dict[int, str]:
    if not campaign_ids:
        return {}
    rows = await conn.execute(
        select(campaigns.c.id, campaigns.c.state).where(campaigns.c.id.in_(list(campaign_ids)))
    )
    return dict(rows.all())


def names(conn: Connection, campaign_ids) -> dict[int, dict]:
    """What PASS keeps of each campaign in memory (sync, inside its claim batch)."""
    if not campaign_ids:
        return {}
    rows = conn.execute(
        select(campaigns.c.id, campaigns.c.name, campaigns.c.created_by, campaigns.c.state,
               campaigns.c.throttle).where(campaigns.c.id.in_(list(campaign_ids)))
    )
    return {row.id: dict(row._mapping) for row in rows}


async def due_to_start(conn: AsyncConnection, now: datetime) -> list[dict]:
    rows = await conn.execute(
        select(campaigns).where(campaigns.c.state == "scheduled", campaigns.c.schedule_at <= now)
    )
    return [dict(row._mapping) for row in rows]


async def next_start(conn: AsyncConnection) -> datetime | None:
    return await conn.scalar(select(func.min(campaigns.c.schedule_at)).where(campaigns.c.state == "scheduled"))


async def advance_schedule(conn: AsyncConnection, campaign_id: int, old: datetime, new: datetime | None) -> bool:
    """Move a recurring campaign's next run from ``old`` to ``new``; only one process wins."""
    result = await conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.schedule_at == old, campaigns.c.state == "scheduled")
        .values(schedule_at=new)
    )
    return result.rowcount == 1


async def needing_expansion(conn: AsyncConnection) -> list[dict]:
    rows = await conn.execute(
        select(campaigns).where(campaigns.c.state == "running", campaigns.c.expanded_at.is_(None))
    )
    return [dict(row._mapping) for row in rows]


def _audience_filter(campaign: dict):
    """The contacts a campaign reaches: those of its books, or without books
    every contact — never through somebody's personal book
    (:func:`~ums.store.addressbooks.campaign_books`) — with an address for
    its channel, in its segment."""
    audience = campaign["audience"] or {}
    conditions = [ADDRESS_COLUMN[campaign["channel"]].is_not(None), ADDRESS_COLUMN[campaign["channel"]] != ""]
    books = audience.get("books") or []
    if books:
        members = (
            select(address_book_entries.c.contact_id)
            .join(address_books, address_books.c.id == address_book_entries.c.book_id)
            .where(address_books.c.name.in_(books), addressbooks.campaign_books())
        )
        conditions.append(contacts.c.id.in_(members))
    else:
        conditions.append(addressbooks.campaign_contacts())
    for field, wanted in (audience.get("segment") or {}).items():
        column = contacts.c[field]
        conditions.append(column.in_(wanted) if isinstance(wanted, list) else column == wanted)
    return and_(*conditions)


async def expand_batch(
    conn: AsyncConnection, campaign: dict, now: datetime, batch_size: int, domain: str | None = None
) -> int | None:
    """Turn the next ``batch_size`` audience members into deliveries.

    Runs as one INSERT … SELECT, so memory stays flat whatever the audience
    size. Returns the number added, or None when another process expanded the
    same batch first (the checkpoint moved). The caller commits.
    """
    checkpoint = campaign["checkpoint"]
    audience = _audience_filter(campaign)
    window = (
        select(contacts.c.id).where(contacts.c.id > checkpoint, audience).order_by(contacts.c.id).limit(batch_size)
    ).subquery()
    new_checkpoint = await conn.scalar(select(func.max(window.c.id)))
    if new_checkpoint is None:
        return 0
    expires_at = now + timedelta(seconds=campaign["expires_after"]) if campaign.get("expires_after") else None
    added = await rows.insert_campaign(
        conn, campaign, ADDRESS_COLUMN[campaign["channel"]],
        and_(contacts.c.id > checkpoint, contacts.c.id <= new_checkpoint, audience), now, expires_at, domain)
    moved = await conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign["id"], campaigns.c.checkpoint == checkpoint)
        .values(checkpoint=new_checkpoint, total=campaigns.c.total + added)
    )
    if moved.rowcount != 1:
        return None
    campaign["checkpoint"] = new_checkpoint
    campaign["total"] = campaign.get("total", 0) + added
    return added


async def mark_expanded(conn: AsyncConnection, campaign_id: int, now: datetime) -> None:
    await conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(expanded_at=now))


async def complete_finished(conn: AsyncConnection, now: datetime) -> list[int]:
    """Mark running, fully expanded campaigns with nothing pending as completed."""
    pending = exists().where(deliveries.c.campaign_id == campaigns.c.id, deliveries.c.state.in_(PENDING_STATES))
    candidates = (
        await conn.execute(
            select(campaigns.c.id).where(
                campaigns.c.state == "running", campaigns.c.expanded_at.is_not(None), ~pending
            )
        )
    ).scalars().all()
    for campaign_id in candidates:
        await set_state(conn, campaign_id, "completed", ("running",), finished_at=now)
    return list(candidates)


async def counts_by_state(conn: AsyncConnection, campaign_id: int) -> dict[str, int]:
    rows = await conn.execute(
        select(deliveries.c.state, func.count())
        .where(deliveries.c.campaign_id == campaign_id)
        .group_by(deliveries.c.state)
    )
    return dict(rows.all())


async def pending_of(conn: AsyncConnection, campaign_id: int, include_in_flight: bool) -> list[dict]:
    states = PENDING_STATES if include_in_flight else tuple(s for s in PENDING_STATES if s != "sending")
    rows = await conn.execute(
        select(deliveries).where(deliveries.c.campaign_id == campaign_id, deliveries.c.state.in_(states))
    )
    return [dict(row._mapping) for row in rows]


# --- the pre-send check, clone and delete, statistics -------------------------------------

async def audience(conn: AsyncConnection, campaign: dict) -> list[dict]:
    """Every contact the campaign would reach now (the rows :func:`expand_batch` reads)."""
    rows = await conn.execute(select(contacts).where(_audience_filter(campaign)).order_by(contacts.c.id))
    return [dict(row._mapping) for row in rows]


async def books_named(conn: AsyncConnection, names: list[str]) -> set[str]:
    """Those of ``names`` that are books a campaign may name (not somebody's personal book)."""
    if not names:
        return set()
    rows = await conn.execute(select(address_books.c.name)
                              .where(address_books.c.name.in_(names), addressbooks.campaign_books()))
    return set(rows.scalars())


async def set_tracking(conn: AsyncConnection, campaign_id: int, on: bool) -> None:
    await conn.execute(update(campaigns).where(campaigns.c.id == campaign_id).values(tracking=on))


async def delete_campaign(conn: AsyncConnection, campaign_id: int) -> int:
    """Delete a campaign and its deliveries (their CDR rows stay, for billing);
    returns the number of deliveries deleted."""
    await conn.execute(tracking_events.delete().where(tracking_events.c.campaign_id == campaign_id))
    removed = await conn.execute(deliveries.delete().where(deliveries.c.campaign_id == campaign_id))
    await conn.execute(campaigns.delete().where(campaigns.c.id == campaign_id))
    return removed.rowcount


async def delivery_moments(conn: AsyncConnection, campaign_id: int) -> list[tuple]:
    """(channel, state, finished_at, bounced_at) of each finished delivery, for stats and charts."""
    rows = await conn.execute(
        select(deliveries.c.channel, deliveries.c.state, deliveries.c.finished_at, deliveries.c.bounced_at)
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.finished_at.is_not(None))
    )
    return [(channel, state, as_utc(finished), as_utc(bounced)) for channel, state, finished, bounced in rows]


async def cost_moments(conn: AsyncConnection, campaign_id: int) -> list[tuple]:
    """(channel, start, cost) of each CDR row of the campaign's deliveries."""
    rows = await conn.execute(
        select(deliveries.c.channel, cdr.c.start, cdr.c.cost)
        .select_from(cdr.join(deliveries, deliveries.c.id == cdr.c.delivery_id))
        .where(deliveries.c.campaign_id == campaign_id, cdr.c.cost.is_not(None))
    )
    return [(channel, as_utc(start), cost) for channel, start, cost in rows]


async def refusal_moments(conn: AsyncConnection, campaign_id: int) -> list[tuple]:
    """(channel, when) of each refusal (unsubscribe, refusal) recorded for an
    address after the campaign's delivery to it was sent."""
    rows = await conn.execute(
        select(deliveries.c.channel, suppressions.c.created_at)
        .select_from(deliveries.join(suppressions, and_(suppressions.c.channel == deliveries.c.channel,
                                                        suppressions.c.address == func.lower(deliveries.c.recipient))))
        .where(deliveries.c.campaign_id == campaign_id, deliveries.c.state == "sent",
               suppressions.c.reason.in_(("unsubscribe", "refusal")),
               suppressions.c.created_at >= deliveries.c.finished_at)
    )
    return [(channel, as_utc(when)) for channel, when in rows]
