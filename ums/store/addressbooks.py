"""Address books as people use them in WAS and ``ums contacts``: personal,
shared and organisation books, contact search, upsert on import, consent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, desc, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import address_book_entries, address_books, consents, contacts
from . import as_utc

CONTACT_FIELDS = ("customer_id", "name", "email", "fax", "phone", "grade", "timezone", "locale")
SCOPES = ("personal", "shared", "organisation")


async def visible_books(conn: AsyncConnection, user_id: int | None) -> list[dict]:
    """The user's own personal books plus every shared and organisation book."""
    query = select(address_books).order_by(address_books.c.scope, address_books.c.name)
    condition = address_books.c.scope != "personal"
    if user_id is not None:
        condition = or_(condition, address_books.c.owner_id == user_id)
    return [dict(row._mapping) for row in await conn.execute(query.where(condition))]


async def book(conn: AsyncConnection, book_id: int) -> dict | None:
    row = (await conn.execute(select(address_books).where(address_books.c.id == book_id))).first()
    return dict(row._mapping) if row else None


async def ensure_book(conn: AsyncConnection, name: str, scope: str = "shared", owner_id: int | None = None) -> int:
    """The id of the named book (created when missing)."""
    query = select(address_books.c.id).where(address_books.c.name == name)
    query = query.where(address_books.c.owner_id == owner_id if owner_id else address_books.c.owner_id.is_(None))
    found = await conn.scalar(query)
    if found is not None:
        return found
    result = await conn.execute(insert(address_books).values(name=name, scope=scope, owner_id=owner_id))
    return result.inserted_primary_key[0]


def _search(query, text: str | None):
    if text:
        pattern = f"%{text.strip().lower()}%"
        query = query.where(or_(*(
            contacts.c[name].ilike(pattern) for name in ("name", "email", "fax", "phone", "customer_id", "grade")
        )))
    return query


async def search(
    conn: AsyncConnection, text: str | None = None, book_id: int | None = None, limit: int = 500
) -> list[dict]:
    query = select(contacts).order_by(contacts.c.name, contacts.c.id).limit(limit)
    if book_id is not None:
        members = select(address_book_entries.c.contact_id).where(address_book_entries.c.book_id == book_id)
        query = query.where(contacts.c.id.in_(members))
    return [dict(row._mapping) for row in await conn.execute(_search(query, text))]


async def contact(conn: AsyncConnection, contact_id: int) -> dict | None:
    row = (await conn.execute(select(contacts).where(contacts.c.id == contact_id))).first()
    return dict(row._mapping) if row else None


async def find_match(conn: AsyncConnection, fields: dict) -> dict | None:
    """The existing contact an imported record stands for: same customer id,
    else same email, else same fax or phone number."""
    for key in ("customer_id", "email", "fax", "phone"):
        value = fields.get(key)
        if value:
            row = (await conn.execute(select(contacts).where(contacts.c[key] == value).limit(1))).first()
            if row is not None:
                return dict(row._mapping)
    return None


async def save_contact(conn: AsyncConnection, fields: dict, now: datetime, contact_id: int | None = None) -> int:
    values = {key: fields.get(key) or None for key in CONTACT_FIELDS if key in fields}
    if contact_id is None:
        result = await conn.execute(insert(contacts).values(**values, created_at=now, updated_at=now))
        return result.inserted_primary_key[0]
    await conn.execute(update(contacts).where(contacts.c.id == contact_id).values(**values, updated_at=now))
    return contact_id


async def add_to_book(conn: AsyncConnection, book_id: int, contact_id: int) -> None:
    exists = await conn.scalar(select(address_book_entries.c.book_id).where(
        address_book_entries.c.book_id == book_id, address_book_entries.c.contact_id == contact_id))
    if exists is None:
        try:
            async with conn.begin_nested():
                await conn.execute(insert(address_book_entries).values(book_id=book_id, contact_id=contact_id))
        except IntegrityError:
            pass


async def remove_from_book(conn: AsyncConnection, book_id: int, contact_id: int) -> None:
    await conn.execute(delete(address_book_entries).where(
        address_book_entries.c.book_id == book_id, address_book_entries.c.contact_id == contact_id))


async def books_of(conn: AsyncConnection, contact_id: int) -> list[int]:
    rows = await conn.execute(select(address_book_entries.c.book_id).where(
        address_book_entries.c.contact_id == contact_id))
    return [row[0] for row in rows]


async def latest_consent(conn: AsyncConnection, contact_id: int, purpose: str = "advertising") -> dict | None:
    row = (await conn.execute(
        select(consents).where(consents.c.contact_id == contact_id, consents.c.purpose == purpose)
        .order_by(desc(consents.c.recorded_at), desc(consents.c.id)).limit(1)
    )).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found["recorded_at"] = as_utc(found["recorded_at"])
    return found


async def latest_consents(conn: AsyncConnection, contact_ids: list[int]) -> dict[int, dict]:
    """The newest advertising consent record of each contact."""
    found: dict[int, dict] = {}
    if not contact_ids:
        return found
    rows = await conn.execute(
        select(consents).where(consents.c.contact_id.in_(contact_ids), consents.c.purpose == "advertising")
        .order_by(consents.c.recorded_at, consents.c.id)
    )
    for row in rows:
        record = dict(row._mapping)
        record["recorded_at"] = as_utc(record["recorded_at"])
        found[row.contact_id] = record
    return found


async def record_consent(
    conn: AsyncConnection, contact_id: int, granted: bool, source: str, recorded_at: datetime,
    night_time: bool = False,
) -> bool:
    """Record consent unless the newest record already says the same; returns whether it was recorded."""
    current = await latest_consent(conn, contact_id)
    if current and (current["granted"], current["source"], current["night_time"], current["recorded_at"]) == (
        granted, source, night_time, recorded_at
    ):
        return False
    await conn.execute(insert(consents).values(
        contact_id=contact_id, granted=granted, source=source, recorded_at=recorded_at, night_time=night_time,
        channel="any", purpose="advertising", withdrawn_at=None if granted else recorded_at,
    ))
    return True
