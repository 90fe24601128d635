"""Sieve scripts: the site-wide ones (scope ``site``) and each mailbox's own."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import mailboxes, rules


def _where(mailbox_id: int | None, name: str):
    scope = "site" if mailbox_id is None else "mailbox"
    mailbox = rules.c.mailbox_id.is_(None) if mailbox_id is None else rules.c.mailbox_id == mailbox_id
    return (rules.c.scope == scope, mailbox, rules.c.name == name)


async def save(conn: AsyncConnection, name: str, script: str, now: datetime, mailbox_id: int | None = None) -> int:
    """Create or replace a script; ``mailbox_id`` None means site-wide."""
    where = _where(mailbox_id, name)
    existing = await conn.scalar(select(rules.c.id).where(*where))
    if existing is not None:
        await conn.execute(update(rules).where(rules.c.id == existing).values(script=script, active=True, updated_at=now))
        return existing
    result = await conn.execute(
        insert(rules).values(
            scope="site" if mailbox_id is None else "mailbox", mailbox_id=mailbox_id,
            name=name, script=script, active=True, updated_at=now,
        )
    )
    return result.inserted_primary_key[0]


async def scripts_named(conn: AsyncConnection, name: str, mailbox_ids) -> dict[int, str]:
    """The script called ``name`` of each of these mailboxes that has one (mailbox id → text)."""
    if not mailbox_ids:
        return {}
    found = await conn.execute(
        select(rules.c.mailbox_id, rules.c.script)
        .where(rules.c.scope == "mailbox", rules.c.name == name, rules.c.mailbox_id.in_(list(mailbox_ids)))
    )
    return dict(found.all())


async def remove(conn: AsyncConnection, name: str, mailbox_id: int | None = None) -> bool:
    result = await conn.execute(delete(rules).where(*_where(mailbox_id, name)))
    return result.rowcount > 0


async def list_all(conn: AsyncConnection) -> list[dict]:
    query = (
        select(rules, mailboxes.c.address)
        .outerjoin(mailboxes, mailboxes.c.id == rules.c.mailbox_id)
        .order_by(rules.c.scope.desc(), mailboxes.c.address, rules.c.name)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]


async def active_scripts(conn: AsyncConnection, mailbox_id: int | None) -> list[tuple[str, str]]:
    """(name, script) of the active site scripts, then the mailbox's, each in name order."""
    site = await conn.execute(
        select(rules.c.name, rules.c.script)
        .where(rules.c.scope == "site", rules.c.active.is_(True))
        .order_by(rules.c.name)
    )
    result = [(f"site:{name}", script) for name, script in site]
    if mailbox_id is not None:
        own = await conn.execute(
            select(rules.c.name, rules.c.script)
            .where(rules.c.scope == "mailbox", rules.c.mailbox_id == mailbox_id, rules.c.active.is_(True))
            .order_by(rules.c.name)
        )
        result += [(name, script) for name, script in own]
    return result


async def active_scripts_by_mailbox(conn: AsyncConnection, mailbox_ids) -> dict[int, list[tuple[str, str]]]:
    """:func:`active_scripts` for many mailboxes in two queries (mailbox id → its list)."""
    if not mailbox_ids:
        return {}
    site = await active_scripts(conn, None)
    found: dict[int, list[tuple[str, str]]] = {mailbox_id: list(site) for mailbox_id in mailbox_ids}
    own = await conn.execute(
        select(rules.c.mailbox_id, rules.c.name, rules.c.script)
        .where(rules.c.scope == "mailbox", rules.c.mailbox_id.in_(list(found)), rules.c.active.is_(True))
        .order_by(rules.c.name)
    )
    for mailbox_id, name, script in own:
        found[mailbox_id].append((name, script))
    return found
