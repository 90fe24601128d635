"""API keys of back-office systems (EPS). Only a SHA-256 hash of each key is
stored; the key itself is shown once, when it is created."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import api_keys

PREFIX_LENGTH = 8


def hash_key(key: str) -> str:
    # Keys are 256-bit random strings, so a plain hash is enough (no KDF needed).
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "ums_" + secrets.token_urlsafe(32)


async def create(conn: AsyncConnection, system: str, now: datetime) -> tuple[int, str]:
    """Create a key for ``system``; returns (id, key). The key is not recoverable later."""
    key = new_key()
    result = await conn.execute(
        api_keys.insert().values(
            system=system, prefix=key[:PREFIX_LENGTH + 4], key_hash=hash_key(key), created_at=now
        )
    )
    return result.inserted_primary_key[0], key


async def system_for(conn: AsyncConnection, key: str) -> str | None:
    """The system owning an unrevoked ``key``, or None."""
    return await conn.scalar(
        select(api_keys.c.system).where(
            api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None)
        )
    )


async def list_keys(conn: AsyncConnection, include_revoked: bool = False) -> list[dict]:
    query = select(
        api_keys.c.id, api_keys.c.system, api_keys.c.prefix, api_keys.c.created_at,
        api_keys.c.revoked_at, api_keys.c.last_used_at,
    ).order_by(api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    return [dict(row._mapping) for row in await conn.execute(query)]


async def revoke(conn: AsyncConnection, key_id: int, now: datetime) -> bool:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount > 0


async def revoke_system(conn: AsyncConnection, system: str, now: datetime) -> int:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.system == system, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return result.rowcount
