"""Queries the web front end (WAS) needs: the unified inbox over the mailbox
tables, API keys, and the figures behind ``/metrics``."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import deliveries, mailbox_messages, mailboxes, suppressions
from . import as_utc
from .mailbox import ENTRY_WITH_RAW, with_raw

LIST_COLUMNS = [
    mailbox_messages.c.id, mailbox_messages.c.mailbox_id, mailbox_messages.c.folder,
    mailbox_messages.c.flags, mailbox_messages.c.media, mailbox_messages.c.classification,
    mailbox_messages.c.sender, mailbox_messages.c.recipient, mailbox_messages.c.subject,
    mailbox_messages.c.size, mailbox_messages.c.pages, mailbox_messages.c.duration,
    mailbox_messages.c.received_at,
]


def _visible(query, user_id: int | None):
    """Mailbox users see their own mailboxes; ``user_id=None`` sees all."""
    if user_id is None:
        return query
    owned = select(mailboxes.c.id).where(mailboxes.c.owner_id == user_id)
    return query.where(mailbox_messages.c.mailbox_id.in_(owned))


async def inbox(
    conn: AsyncConnection, user_id: int | None, media: str | None = None, folder: str | None = None,
    flag: str | None = None, limit: int = 200,
) -> list[dict]:
    query = select(*LIST_COLUMNS).order_by(mailbox_messages.c.received_at.desc(), mailbox_messages.c.id.desc())
    query = _visible(query, user_id)
    if media:
        query = query.where(mailbox_messages.c.media == media)
    if folder:
        query = query.where(mailbox_messages.c.folder == folder)
    rows = [dict(row._mapping) for row in await conn.execute(query.limit(limit * 4 if flag else limit))]
    for row in rows:
        row["flags"] = list(row["flags"] or [])
        row["received_at"] = as_utc(row["received_at"])
    if flag == "unseen":
        rows = [row for row in rows if "seen" not in row["flags"]]
    elif flag:
        rows = [row for row in rows if flag in row["flags"]]
    return rows[:limit]


async def folders(conn: AsyncConnection, user_id: int | None) -> list[str]:
    query = _visible(select(mailbox_messages.c.folder).distinct(), user_id)
    names = {row[0] for row in await conn.execute(query)} | {"INBOX"}
    return sorted(names, key=lambda name: (name != "INBOX", name.lower()))


async def message(conn: AsyncConnection, user_id: int | None, message_id: int) -> dict | None:
    """One entry the user may see, with the stored message's bytes (``raw``)."""
    query = _visible(with_raw(select(*ENTRY_WITH_RAW)).where(mailbox_messages.c.id == message_id), user_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found["flags"] = list(found["flags"] or [])
    found["received_at"] = as_utc(found["received_at"])
    return found


async def set_flags(conn: AsyncConnection, message_id: int, flags: list[str]) -> None:
    await conn.execute(
        update(mailbox_messages).where(mailbox_messages.c.id == message_id).values(flags=sorted(set(flags)))
    )


async def move(conn: AsyncConnection, message_id: int, folder: str) -> None:
    await conn.execute(update(mailbox_messages).where(mailbox_messages.c.id == message_id).values(folder=folder))


async def own_mailbox_address(conn: AsyncConnection, user_id: int) -> str | None:
    return await conn.scalar(select(mailboxes.c.address).where(mailboxes.c.owner_id == user_id).limit(1))


async def delivery_counts(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    """(channel, state, count) over the whole delivery table."""
    query = select(deliveries.c.channel, deliveries.c.state, func.count()).group_by(
        deliveries.c.channel, deliveries.c.state
    )
    return [tuple(row) for row in await conn.execute(query)]


async def mailbox_counts(conn: AsyncConnection) -> list[tuple[str, int]]:
    query = select(mailbox_messages.c.media, func.count()).group_by(mailbox_messages.c.media)
    return [tuple(row) for row in await conn.execute(query)]


async def suppression_counts(conn: AsyncConnection) -> list[tuple[str, int]]:
    query = select(suppressions.c.channel, func.count()).group_by(suppressions.c.channel)
    return [tuple(row) for row in await conn.execute(query)]


async def all_users(conn: AsyncConnection) -> list[dict]:
    from ..db.models import users

    query = select(users.c.id, users.c.username, users.c.role, users.c.display_name, users.c.email,
                   users.c.disabled, users.c.created_at).order_by(users.c.username)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def delivery(conn: AsyncConnection, delivery_id: int, senders: tuple[str, ...] | None = None) -> dict | None:
    """A delivery's public status (no token, no variables); with ``senders``,
    only a delivery one of them queued (its ``service_name``), else None."""
    columns = [deliveries.c[name] for name in (
        "id", "channel", "recipient", "kind", "state", "attempts", "due_at", "last_code", "last_error",
        "created_at", "finished_at", "campaign_id", "message_id")]
    query = select(*columns).where(deliveries.c.id == delivery_id)
    if senders is not None:
        query = query.where(deliveries.c.service_name.in_(senders))
    row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None


async def campaign_timeline(conn: AsyncConnection, campaign_id: int, tz=timezone.utc) -> list[tuple[str, str, str, int]]:
    """(hour in ``tz``, channel, final state, count) of a campaign's finished deliveries."""
    rows = await conn.execute(
        select(deliveries.c.finished_at, deliveries.c.channel, deliveries.c.state).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.finished_at.is_not(None))
    )
    counts: dict[tuple[str, str, str], int] = {}
    for finished_at, channel, state in rows:
        key = (as_utc(finished_at).astimezone(tz).strftime("%Y-%m-%d %H:00"), channel, state)
        counts[key] = counts.get(key, 0) + 1
    return [(*key, count) for key, count in sorted(counts.items())]


async def cdr_search(
    conn: AsyncConnection, start: datetime | None = None, end: datetime | None = None,
    medium: str | None = None, dst: str | None = None, limit: int = 500,
) -> list[dict]:
    """CDR rows, newest first, filtered by time range (start inclusive, end exclusive),
    medium and destination substring."""
    from ..db.models import cdr

    query = select(cdr).order_by(cdr.c.start.desc(), cdr.c.id.desc())
    if start:
        query = query.where(cdr.c.start >= start)
    if end:
        query = query.where(cdr.c.start < end)
    if medium:
        query = query.where(cdr.c.medium == medium)
    if dst:
        query = query.where(cdr.c.dst.ilike(f"%{dst}%"))
    rows = []
    for row in await conn.execute(query.limit(limit)):
        record = dict(row._mapping)
        for key in ("start", "answer", "end"):
            record[key] = as_utc(record[key])
        rows.append(record)
    return rows


async def billing_month(conn: AsyncConnection, start: datetime, end: datetime) -> list[dict]:
    """Per medium and source (campaign or service): final deliveries, delivered,
    pages, billed seconds and cost between ``start`` and ``end``."""
    from sqlalchemy import case

    from ..db.models import cdr

    delivered = func.sum(case((cdr.c.disposition == "ANSWERED", 1), else_=0))
    query = (
        select(cdr.c.medium, cdr.c.source, func.count().label("messages"), delivered.label("delivered"),
               func.coalesce(func.sum(cdr.c.pages), 0).label("pages"),
               func.coalesce(func.sum(cdr.c.billsec), 0).label("billsec"),
               func.coalesce(func.sum(cdr.c.cost), 0).label("cost"))
        .where(cdr.c.start >= start, cdr.c.start < end, cdr.c.final.is_(True))
        .group_by(cdr.c.medium, cdr.c.source).order_by(cdr.c.medium, cdr.c.source)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]


#: the name of the one script each mailbox edits in WAS
MAILBOX_RULE = "mailbox"


async def rule_mailboxes(conn: AsyncConnection, user_id: int | None) -> list[dict]:
    """Mailboxes (the user's own, or all) with their WAS-edited Sieve script."""
    from ..db.models import rules

    query = select(mailboxes.c.id, mailboxes.c.address).order_by(mailboxes.c.address)
    if user_id is not None:
        query = query.where(mailboxes.c.owner_id == user_id)
    boxes = [dict(row._mapping) for row in await conn.execute(query)]
    scripts = dict((await conn.execute(
        select(rules.c.mailbox_id, rules.c.script).where(rules.c.scope == "mailbox", rules.c.name == MAILBOX_RULE)
    )).all())
    for box in boxes:
        box["script"] = scripts.get(box["id"], "")
        box["error"] = None
    return boxes


async def save_mailbox_rule(conn: AsyncConnection, mailbox_id: int, script: str, now: datetime) -> None:
    from ..db.models import rules

    done = await conn.execute(
        update(rules).where(rules.c.scope == "mailbox", rules.c.mailbox_id == mailbox_id,
                            rules.c.name == MAILBOX_RULE).values(script=script, updated_at=now, active=True)
    )
    if done.rowcount == 0:
        await conn.execute(rules.insert().values(scope="mailbox", mailbox_id=mailbox_id, name=MAILBOX_RULE,
                                                 script=script, active=True, updated_at=now))
