"""Queries the web front end (WAS) needs: the unified inbox over the mailbox
tables, API keys, and the figures behind ``/metrics``."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import deliveries, mailbox_messages, mailboxes, suppressions
from . import as_utc

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
    query = _visible(select(mailbox_messages).where(mailbox_messages.c.id == message_id), user_id)
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
