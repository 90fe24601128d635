"""Contacts, their consent records and address books."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import address_book_entries, consents, contacts
from ..media import BadNumber, international
from . import as_dicts


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


async def by_phone(conn: AsyncConnection, number: str, country_code: str = "82") -> dict | None:
    """The contact (lowest id) whose phone is ``number`` however either is
    written (``+82 10-1234-5678``, ``010 1234 5678``, ``01012345678``): both are
    compared in international form. The SQL narrows by the last four digits."""
    try:
        wanted = international(number, country_code)
    except BadNumber:
        return None
    query = select(contacts).where(contacts.c.phone.like(f"%{wanted[-4:]}")).order_by(contacts.c.id)
    for row in as_dicts(await conn.execute(query)):
        try:
            if international(row["phone"], country_code) == wanted:
                return row
        except BadNumber:
            continue
    return None


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


#: CSV columns an audience import copies into contacts
IMPORT_FIELDS = ("customer_id", "name", "email", "fax", "phone", "grade", "timezone", "locale")


def by_ids(conn: Connection, ids) -> dict[int, dict]:
    """Many contacts by id (sync: PASS reads them inside its claim batch)."""
    ids = [i for i in set(ids) if i is not None]
    if not ids:
        return {}
    return {row["id"]: row for row in as_dicts(conn.execute(select(contacts).where(contacts.c.id.in_(ids))))}


def lock_for_decision(conn: Connection, ids) -> None:
    """Lock the contact rows of ``ids`` until the transaction ends, so two PASS
    processes deciding about one customer (the frequency caps) take turns: on
    PostgreSQL ``FOR NO KEY UPDATE`` in id order (no deadlock between batches;
    new deliveries and other foreign keys still insert); on SQLite the
    transaction's write lock already serialises every decision."""
    ids = sorted({i for i in ids if i is not None})
    if not ids or conn.dialect.name != "postgresql":
        return
    conn.execute(select(contacts.c.id).where(contacts.c.id.in_(ids)).order_by(contacts.c.id)
                 .with_for_update(key_share=True)).all()


def advertising_consents(conn: Connection, ids) -> dict[int, list[dict]]:
    """Advertising consent records of many contacts, by contact id (sync, like :func:`by_ids`)."""
    ids = [i for i in set(ids) if i is not None]
    found: dict[int, list[dict]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = conn.execute(
        select(consents).where(consents.c.contact_id.in_(ids), consents.c.purpose == "advertising")
    )
    for row in rows:
        found[row.contact_id].append(dict(row._mapping))
    return found


async def import_batch(conn: AsyncConnection, book_id: int, rows: list[dict], key: str = "email") -> int:
    """Add rows to the book, creating contacts whose ``key`` address is new."""
    if key == "email":
        for row in rows:
            row["email"] = (row.get("email") or "").strip().lower()
    addresses = [row[key] for row in rows]
    column = contacts.c[key]
    existing = dict((await conn.execute(select(column, contacts.c.id).where(column.in_(addresses)))).all())
    new_rows = [row for row in rows if row[key] not in existing]
    if new_rows:
        await conn.execute(insert(contacts), [{field: row.get(field) for field in IMPORT_FIELDS} for row in new_rows])
        existing = dict((await conn.execute(select(column, contacts.c.id).where(column.in_(addresses)))).all())
    members = set(
        (await conn.execute(
            select(address_book_entries.c.contact_id).where(
                address_book_entries.c.book_id == book_id,
                address_book_entries.c.contact_id.in_(list(existing.values())),
            )
        )).scalars().all()
    )
    entries = [{"book_id": book_id, "contact_id": cid} for cid in set(existing.values()) - members]
    if entries:
        await conn.execute(insert(address_book_entries), entries)
    return len(rows)


async def by_customer_ids(
    conn: AsyncConnection, customer_ids: list[str], columns: tuple[str, ...] = (),
) -> dict[str, dict]:
    """Contacts for many customer ids at once, keyed by customer id (missing
    ones absent); only ``columns`` (plus customer_id) when given."""
    return await conn.run_sync(customers_by_ids, customer_ids, columns)


def customers_by_ids(conn: Connection, customer_ids: list[str], columns: tuple[str, ...] = ()) -> dict[str, dict]:
    """:func:`by_customer_ids` on a sync connection (the EPS ingest writer's form)."""
    found: dict[str, dict] = {}
    unique = sorted(set(customer_ids))
    wanted = [contacts.c[name] for name in {"customer_id", *columns}] if columns else [contacts]
    for start in range(0, len(unique), 400):
        rows = conn.execute(select(*wanted).where(contacts.c.customer_id.in_(unique[start:start + 400])))
        found.update({row.customer_id: dict(row._mapping) for row in rows})
    return found
