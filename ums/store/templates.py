"""Message templates, one row per (name, channel)."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import templates

FIELDS = ("kind", "subject", "body_html", "body_text", "sender_name", "sender_contact", "options")


async def get(conn: AsyncConnection, name: str, channel: str) -> dict | None:
    return await conn.run_sync(get_sync, name, channel)


def get_sync(conn: Connection, name: str, channel: str) -> dict | None:
    """:func:`get` on a sync connection (inside PASS's claim batch)."""
    row = conn.execute(select(templates).where(templates.c.name == name, templates.c.channel == channel)).first()
    return dict(row._mapping) if row else None


async def save(conn: AsyncConnection, name: str, channel: str, now, **fields) -> int:
    """Create the template, or replace its fields and bump its version."""
    values = {key: fields[key] for key in FIELDS if key in fields}
    existing = await get(conn, name, channel)
    if existing is None:
        result = await conn.execute(
            insert(templates).values(name=name, channel=channel, created_at=now, updated_at=now, **values)
        )
        return result.inserted_primary_key[0]
    await conn.execute(
        update(templates)
        .where(templates.c.id == existing["id"])
        .values(version=existing["version"] + 1, updated_at=now, **values)
    )
    return existing["id"]


async def list_all(conn: AsyncConnection) -> list[dict]:
    rows = await conn.execute(select(templates).order_by(templates.c.name, templates.c.channel))
    return [dict(row._mapping) for row in rows]


async def by_names(conn: AsyncConnection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """Templates for many (name, channel) pairs at once."""
    names = {name for name, _ in keys}
    if not names:
        return {}
    rows = await conn.execute(select(templates).where(templates.c.name.in_(names)))
    found = {(row.name, row.channel): dict(row._mapping) for row in rows}
    return {key: found[key] for key in keys if key in found}
