"""The unified mailbox (MAS writes, WAS reads): mailboxes and their messages.

A message is stored once, however many mailboxes and folders file it: its
bytes are one ``message_bodies`` row (keyed by their SHA-256, so the same
message arriving again is not stored twice either), and each filing is a
``mailbox_messages`` entry pointing at it (``body_id``). A message to 100
recipients costs its size once, not 100 times. Readers get ``raw`` through
:func:`message` (and :mod:`ums.store.web`), never from the entry table.

A ``mailbox_messages`` row is one message filed into one folder of one
mailbox. Its columns: ``media`` (email, fax or voice), ``pages`` (fax page
count), ``duration`` (voice mail seconds), ``classification`` (reply, refusal,
unsubscribe, bounce, fax, voice, notice), ``flags`` (JSON list of IMAP flags
such as ``\\Seen``), ``contact_id`` (the customer matched by sender address),
``delivery_id`` (the outbound delivery it answers or bounces), ``defects``
(MIME problems, one per line) and ``body_id`` (the message exactly as
received, in ``message_bodies``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Integer, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import contacts, mailbox_messages, mailboxes, message_bodies

#: what a reader gets for one entry: its columns and the stored message's bytes
ENTRY_WITH_RAW = (*mailbox_messages.c, message_bodies.c.raw)


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


def body_digest(raw: bytes) -> str:
    """The key a message is stored under (SHA-256, hex)."""
    return hashlib.sha256(raw).hexdigest()


async def store_bodies(conn: AsyncConnection, bodies: dict[str, bytes]) -> None:
    """Store many messages' bytes (:func:`body_digest` → raw bytes), each unless the same
    bytes are stored already: one cached statement, executed for every row at once."""
    if not bodies:
        return
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        module.insert(message_bodies).on_conflict_do_nothing(index_elements=[message_bodies.c.sha256]),
        [{"sha256": digest, "size": len(raw), "raw": raw} for digest, raw in bodies.items()],
    )


async def ensure_many(conn: AsyncConnection, addresses, now: datetime) -> dict[str, dict]:
    """:func:`ensure` for many addresses in at most three statements (address → mailbox)."""
    wanted = {address.strip().lower() for address in addresses}
    if not wanted:
        return {}
    found = await _by_addresses(conn, wanted)
    missing = wanted - set(found)
    if missing:
        module = postgresql if conn.dialect.name == "postgresql" else sqlite
        await conn.execute(module.insert(mailboxes).on_conflict_do_nothing(index_elements=[mailboxes.c.address]),
                           [{"address": address, "created_at": now} for address in sorted(missing)])
        found.update(await _by_addresses(conn, missing))
    return found


async def _by_addresses(conn: AsyncConnection, addresses: set[str]) -> dict[str, dict]:
    rows = await conn.execute(select(mailboxes).where(mailboxes.c.address.in_(addresses)))
    return {row.address: dict(row._mapping) for row in rows}


#: one filed message: its stored bytes found by their digest, and its customer matched by
#: the sender's address (``match_contact``; the oldest such customer) or else ``contact_id``
#: — in the statement itself, so a batch of mail costs two statements whatever its senders
_INSERT_ENTRY = insert(mailbox_messages).values(
    body_id=select(message_bodies.c.id).where(message_bodies.c.sha256 == bindparam("digest")).scalar_subquery(),
    contact_id=func.coalesce(
        select(func.min(contacts.c.id)).where(contacts.c.email == bindparam("match_contact")).scalar_subquery(),
        bindparam("known_contact_id", type_=Integer),
    ),
)


async def store_message(conn: AsyncConnection, **fields) -> int:
    """Insert one filed message; ``fields`` are ``mailbox_messages`` columns, with ``raw``
    (and optionally its ``digest``) in place of ``body_id``, and optionally ``match_contact``:
    an address whose customer, if there is one, takes the place of ``contact_id``."""
    [params] = await _stored_bodies(conn, [fields])
    result = await conn.execute(_INSERT_ENTRY, params)
    return result.inserted_primary_key[0]


async def store_messages(conn: AsyncConnection, rows: list[dict]) -> None:
    """Insert many filed messages (rows as for :func:`store_message`, sharing the same
    columns): each distinct message stored once, then every entry in one statement."""
    if rows:
        await conn.execute(_INSERT_ENTRY, await _stored_bodies(conn, rows))


async def _stored_bodies(conn: AsyncConnection, rows: list[dict]) -> list[dict]:
    """Store the bytes of ``rows``; returns the parameters of :data:`_INSERT_ENTRY` for each."""
    bodies, params = {}, []
    for row in rows:
        row = dict(row)
        raw = row.pop("raw")
        digest = row.pop("digest", None) or body_digest(raw)
        bodies.setdefault(digest, raw)
        row["match_contact"] = row.get("match_contact")
        row["known_contact_id"] = row.pop("contact_id", None)
        params.append({**row, "digest": digest})
    await store_bodies(conn, bodies)
    return params


async def messages(
    conn: AsyncConnection, mailbox_id: int | None = None, folder: str | None = None, limit: int = 100,
) -> list[dict]:
    """Newest first, without the raw bytes."""
    query = select(mailbox_messages).order_by(mailbox_messages.c.id.desc()).limit(limit)
    if mailbox_id is not None:
        query = query.where(mailbox_messages.c.mailbox_id == mailbox_id)
    if folder is not None:
        query = query.where(mailbox_messages.c.folder == folder)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def message(conn: AsyncConnection, message_id: int) -> dict | None:
    """One message with its raw bytes."""
    row = (await conn.execute(with_raw(select(*ENTRY_WITH_RAW)).where(mailbox_messages.c.id == message_id))).first()
    return dict(row._mapping) if row else None


def with_raw(query):
    """``query`` over :data:`ENTRY_WITH_RAW`, joined to the stored message."""
    return query.select_from(mailbox_messages.join(message_bodies, message_bodies.c.id == mailbox_messages.c.body_id))


async def count(conn: AsyncConnection) -> int:
    return await conn.scalar(select(func.count()).select_from(mailbox_messages))


async def stored_bytes(conn: AsyncConnection) -> int:
    """The bytes of every stored message, each counted once (what the mailbox costs)."""
    return await conn.scalar(select(func.coalesce(func.sum(message_bodies.c.size), 0)))
