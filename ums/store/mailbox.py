"""The unified mailbox (MAS writes, WAS reads): mailboxes and their messages.

A ``mailbox_messages`` row is one message filed into one folder of one
mailbox. Its columns: ``media`` (email, fax or voice), ``pages`` (fax page
count), ``duration`` (voice mail seconds), ``classification`` (reply, refusal,
unsubscribe, bounce, fax, voice, notice), ``flags`` (JSON list of IMAP flags
such as ``\\Seen``), ``contact_id`` (the customer matched by sender address),
``delivery_id`` (the outbound delivery it answers or bounces), ``defects``
(MIME problems, one per line) and ``raw`` (the message exactly as received).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import contacts, mailbox_messages, mailboxes


async def by_address(conn: AsyncConnection, address: str) -> dict | None:
    row = (
        await conn.execute(select(mailboxes).where(mailboxes.c.address == address.strip().lower()))
    ).first()
    return dict(row._mapping) if row else None


async def get(conn: AsyncConnection, mailbox_id: int) -> dict | None:
    row = (await conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id))).first()
    return dict(row._mapping) if row else None


async def create(
    conn: AsyncConnection, address: str, now: datetime, owner_id: int | None = None,
    notify_channel: str = "none", notify_address: str | None = None,
) -> int:
    result = await conn.execute(
        insert(mailboxes).values(
            address=address.strip().lower(), owner_id=owner_id, notify_channel=notify_channel,
            notify_address=notify_address, created_at=now,
        )
    )
    return result.inserted_primary_key[0]


async def ensure(conn: AsyncConnection, address: str, now: datetime) -> dict:
    """The mailbox for ``address``, created (quiet, no owner) if it does not exist yet."""
    found = await by_address(conn, address)
    if found is None:
        try:
            async with conn.begin_nested():
                await create(conn, address, now)
        except IntegrityError:  # a concurrent session created it first
            pass
        found = await by_address(conn, address)
    return found


async def store_message(conn: AsyncConnection, **fields) -> int:
    """Insert one filed message; ``fields`` are ``mailbox_messages`` columns."""
    result = await conn.execute(insert(mailbox_messages).values(**fields))
    return result.inserted_primary_key[0]


async def contact_ids_by_email(conn: AsyncConnection, emails: set[str]) -> dict[str, int]:
    """Customers matched by address for many senders at once (lower-cased emails → contact id)."""
    if not emails:
        return {}
    rows = await conn.execute(select(contacts.c.email, contacts.c.id).where(contacts.c.email.in_(emails)))
    return {email: contact_id for email, contact_id in rows}


async def store_messages(conn: AsyncConnection, rows: list[dict]) -> None:
    """Insert many filed messages in one statement (rows share the same columns)."""
    if rows:
        await conn.execute(insert(mailbox_messages), rows)


async def messages(
    conn: AsyncConnection, mailbox_id: int | None = None, folder: str | None = None, limit: int = 100,
) -> list[dict]:
    """Newest first, without the raw bytes."""
    columns = [c for c in mailbox_messages.c if c.name != "raw"]
    query = select(*columns).order_by(mailbox_messages.c.id.desc()).limit(limit)
    if mailbox_id is not None:
        query = query.where(mailbox_messages.c.mailbox_id == mailbox_id)
    if folder is not None:
        query = query.where(mailbox_messages.c.folder == folder)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def message(conn: AsyncConnection, message_id: int) -> dict | None:
    """One message with its raw bytes."""
    row = (await conn.execute(select(mailbox_messages).where(mailbox_messages.c.id == message_id))).first()
    return dict(row._mapping) if row else None


async def count(conn: AsyncConnection) -> int:
    return await conn.scalar(select(func.count()).select_from(mailbox_messages))
