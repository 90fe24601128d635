"""Web sessions (WAS logins) and the failed-login record that rate-limits them.

A session is found by the SHA-256 of its cookie value, so a leaked database
does not hand out live cookies.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import users, web_login_failures, web_sessions
from . import as_utc


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(
    conn: AsyncConnection, token: str, user_id: int, csrf: str, now: datetime, expires_at: datetime
) -> int:
    result = await conn.execute(
        insert(web_sessions).values(
            token_hash=token_hash(token), user_id=user_id, csrf=csrf, created_at=now, expires_at=expires_at
        )
    )
    return result.inserted_primary_key[0]


async def find(conn: AsyncConnection, token: str, now: datetime) -> dict | None:
    """The live session for a cookie value, joined with its (enabled) user."""
    query = (
        select(
            web_sessions.c.id, web_sessions.c.csrf, web_sessions.c.expires_at,
            users.c.id.label("user_id"), users.c.username, users.c.role,
            users.c.display_name, users.c.email,
        )
        .join(users, users.c.id == web_sessions.c.user_id)
        .where(web_sessions.c.token_hash == token_hash(token), users.c.disabled.is_(False))
    )
    row = (await conn.execute(query)).first()
    if row is None or as_utc(row.expires_at) <= now:
        return None
    return dict(row._mapping)


async def extend(conn: AsyncConnection, session_id: int, expires_at: datetime) -> None:
    await conn.execute(update(web_sessions).where(web_sessions.c.id == session_id).values(expires_at=expires_at))


async def delete_by_token(conn: AsyncConnection, token: str) -> None:
    await conn.execute(delete(web_sessions).where(web_sessions.c.token_hash == token_hash(token)))


async def purge_expired(conn: AsyncConnection, now: datetime) -> int:
    result = await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at < now))
    return result.rowcount


async def record_failure(conn: AsyncConnection, username: str, client: str, now: datetime) -> None:
    await conn.execute(
        insert(web_login_failures).values(username=username[:64], client=client[:64], failed_at=now)
    )


async def recent_failures(conn: AsyncConnection, username: str, client: str, since: datetime) -> tuple[int, datetime | None]:
    """Failures for this user name or this client since ``since``: (count, latest)."""
    query = select(func.count(), func.max(web_login_failures.c.failed_at)).where(
        web_login_failures.c.failed_at >= since,
        or_(web_login_failures.c.username == username[:64], web_login_failures.c.client == client[:64]),
    )
    count, latest = (await conn.execute(query)).one()
    return count, as_utc(latest)


async def clear_failures(conn: AsyncConnection, username: str) -> None:
    await conn.execute(delete(web_login_failures).where(web_login_failures.c.username == username[:64]))
