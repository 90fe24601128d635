"""Contacts, their consent records and address books."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import consents, contacts


async def get(conn: AsyncConnection, contact_id: int) -> dict | None:
    row = (await conn.execute(select(contacts).where(contacts.c.id == contact_id))).first()
    return dict(row._mapping) if row else None


async def by_customer_id(conn: AsyncConnection, customer_id: str) -> dict | None:
    row = (await conn.execute(select(contacts).where(contacts.c.customer_id == customer_id))).first()
    return dict(row._mapping) if row else None


async def by_email(conn: AsyncConnection, email: str) -> dict | None:
    row = (
        await conn.execute(select(contacts).where(contacts.c.email == email.strip().lower()).limit(1))
    ).first()
    return dict(row._mapping) if row else None


async def create(conn: AsyncConnection, **fields) -> int:
    if fields.get("email"):
        fields["email"] = fields["email"].strip().lower()
    result = await conn.execute(insert(contacts).values(**fields))
    return result.inserted_primary_key[0]


async def record_consent(
    conn: AsyncConnection, contact_id: int, granted: bool, source: str, recorded_at,
    night_time: bool = False, channel: str = "any", purpose: str = "advertising",
) -> int:
    result = await conn.execute(
        insert(consents).values(
            contact_id=contact_id, granted=granted, source=source, recorded_at=recorded_at,
            night_time=night_time, channel=channel, purpose=purpose,
        )
    )
    return result.inserted_primary_key[0]
