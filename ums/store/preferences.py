"""The rows of ``contact_preferences``: what each customer chose on the
preference centre (channels and topics off, a preferred channel). The rules
— what a choice allows, the consent record each change writes — are
:mod:`ums.preferences`'s; this module only reads and writes the rows, in the
caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import consents, contact_preferences
from . import as_dicts, as_utc


async def get(conn: AsyncConnection, contact_id: int) -> dict | None:
    """The contact's row, or None when they never saved the page."""
    row = (await conn.execute(
        select(contact_preferences).where(contact_preferences.c.contact_id == contact_id))).first()
    return _read(dict(row._mapping)) if row else None


def by_contacts(conn: Connection, ids) -> dict[int, dict]:
    """Many contacts' rows by contact id, those without one left out (sync:
    for a caller inside a batch, like :func:`ums.store.contacts.by_ids`)."""
    ids = [i for i in set(ids) if i is not None]
    if not ids:
        return {}
    rows = conn.execute(select(contact_preferences).where(contact_preferences.c.contact_id.in_(ids)))
    return {row["contact_id"]: _read(row) for row in as_dicts(rows)}


async def save(
    conn: AsyncConnection, contact_id: int, channels_off: list[str], topics_off: list[str],
    preferred_channel: str | None, source: str, now: datetime,
) -> None:
    """Write the contact's whole choice (their row made the first time)."""
    values = {"channels_off": sorted(channels_off), "topics_off": sorted(topics_off),
              "preferred_channel": preferred_channel, "source": source, "updated_at": now}
    done = await conn.execute(
        update(contact_preferences).where(contact_preferences.c.contact_id == contact_id).values(**values))
    if done.rowcount == 0:
        await conn.execute(insert(contact_preferences).values(contact_id=contact_id, **values))


async def consent_records(conn: AsyncConnection, contact_id: int, limit: int = 500) -> list[dict]:
    """The contact's consent records, newest first (every purpose and source)."""
    rows = await conn.execute(
        select(consents).where(consents.c.contact_id == contact_id)
        .order_by(consents.c.recorded_at.desc(), consents.c.id.desc()).limit(limit))
    found = as_dicts(rows)
    for record in found:
        record["recorded_at"] = as_utc(record["recorded_at"])
    return found


def _read(row: dict) -> dict:
    row["updated_at"] = as_utc(row["updated_at"])
    row["channels_off"] = list(row["channels_off"] or [])
    row["topics_off"] = list(row["topics_off"] or [])
    return row
