"""Users of the web front end and CLI."""

from __future__ import annotations

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import users


async def get_by_name(conn: AsyncConnection, username: str) -> dict | None:
    row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return dict(row._mapping) if row else None


async def create(
    conn: AsyncConnection, username: str, password_hash: str, role: str, **fields
) -> int:
    result = await conn.execute(
        insert(users).values(username=username, password_hash=password_hash, role=role, **fields)
    )
    return result.inserted_primary_key[0]


async def count_by_role(conn: AsyncConnection, role: str) -> int:
    return await conn.scalar(select(func.count()).select_from(users).where(users.c.role == role))
