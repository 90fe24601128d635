"""API keys of back-office systems. Only a SHA-256 hash of each key is
stored; the key itself is shown once, when it is created.

A key belongs to one system and carries scopes (:data:`SCOPES`): it sees and
manages only its own system's events and services, and reaches the WAS API
only where it was granted ``send``, ``contacts``, ``campaigns`` or
``mailbox``. A key made without scopes has :data:`BACK_OFFICE_SCOPES`. A
``mailbox`` key reads the mailboxes of the web user it was made for
(``user_id``), and none when it was made for nobody."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import api_keys
from ..errors import UmsError

PREFIX_LENGTH = 8
SCOPES = ("events:write", "events:read", "services:manage", "send", "contacts", "campaigns", "mailbox")
#: what a back-office key may do unless created with other scopes: EPS only
BACK_OFFICE_SCOPES = ("events:write", "events:read", "services:manage")


class UnknownScope(UmsError):
    """Unknown scope {scope!r}; choose from {known}."""


@dataclass(frozen=True)
class Credential:
    """Who presented a key: its system, and what it may do."""

    key_id: int
    system: str
    scopes: frozenset[str]
    #: the web user whose mailboxes the key reads (None: no mailbox)
    user_id: int | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def hash_key(key: str) -> str:
    # Keys are 256-bit random strings, so a plain hash is enough (no KDF needed).
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    return "ums_" + secrets.token_urlsafe(32)


def checked_scopes(scopes) -> list[str]:
    """``scopes`` (or the back-office defaults when empty), each one known."""
    chosen = list(dict.fromkeys(scopes or BACK_OFFICE_SCOPES))
    for scope in chosen:
        if scope not in SCOPES:
            raise UnknownScope(scope=scope, known=", ".join(SCOPES))
    return chosen


async def create(conn: AsyncConnection, system: str, now: datetime, scopes=None,
                 user_id: int | None = None) -> tuple[int, str]:
    """Create a key for ``system`` with ``scopes`` (default :data:`BACK_OFFICE_SCOPES`),
    acting for web user ``user_id`` in the mailbox; returns (id, key). The key is
    not recoverable later."""
    key = new_key()
    result = await conn.execute(
        api_keys.insert().values(
            system=system, prefix=key[:PREFIX_LENGTH + 4], key_hash=hash_key(key), created_at=now,
            scopes=checked_scopes(scopes), user_id=user_id,
        )
    )
    return result.inserted_primary_key[0], key


async def credential_for(conn: AsyncConnection, key: str) -> Credential | None:
    """The :class:`Credential` of an unrevoked ``key``, or None."""
    row = (await conn.execute(
        select(api_keys.c.id, api_keys.c.system, api_keys.c.scopes, api_keys.c.user_id).where(
            api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None))
    )).first()
    if row is None:
        return None
    return Credential(row.id, row.system, frozenset(row.scopes or BACK_OFFICE_SCOPES), row.user_id)


async def system_for(conn: AsyncConnection, key: str) -> str | None:
    """The system owning an unrevoked ``key``, or None."""
    return await conn.scalar(
        select(api_keys.c.system).where(
            api_keys.c.key_hash == hash_key(key), api_keys.c.revoked_at.is_(None)
        )
    )


async def list_keys(conn: AsyncConnection, include_revoked: bool = False) -> list[dict]:
    query = select(
        api_keys.c.id, api_keys.c.system, api_keys.c.prefix, api_keys.c.scopes, api_keys.c.created_at,
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
