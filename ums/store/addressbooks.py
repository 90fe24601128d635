"""Address books as people use them in WAS and ``ums contacts``, and who
sees which contact.

Every read and write of contacts on behalf of someone goes through a
:class:`Viewer` (a person: user id and role; an API key: role ``api`` and its
system) and :func:`visible_contacts`, the one answer to "which contacts may
this viewer see"; a book is read through :func:`visible_books` and written
only when :func:`may_write` says so. The rules:

- **personal** books are their owner's alone — private even from admins (an
  admin manages sharing of shared and organisation books, not people's own).
- **shared** books are seen and written by whoever made them, by admins, and by
  the roles and named users they are shared with (``address_book_shares``;
  role ``api`` shares a book with API keys). A shared book made without an
  owner (the back office) is seen by admins and its shares only.
- **organisation** books are seen by the staff roles (admin, operator,
  marketer) and by API keys (which need the ``contacts`` scope to reach any
  contacts route), and by the roles and users they are shared with — a mailbox
  user sees one only when it is shared with them. Only admins, marketers and
  API keys add to them.
- a contact in no book at all (made by back-office events or an import
  without a book) is an organisation contact: seen by whoever sees
  organisation books by role.
- a contact is seen when it is in any book the viewer sees; whoever sees a
  contact may edit its fields. Imports match existing contacts only among
  those the viewer sees, so naming someone else's contact never reveals it.

:data:`ADMINISTRATOR` is the view of ``ums contacts`` (the CLI is the
administrator's tool): every book and contact. Books made without an owner
(CLI, campaign CSV files, API keys) are organisation books by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, desc, exists, false, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import address_book_entries, address_book_shares, address_books, consents, contacts, users
from ..errors import UmsError
from . import as_utc

CONTACT_FIELDS = ("customer_id", "name", "email", "fax", "phone", "grade", "timezone", "locale")
SCOPES = ("personal", "shared", "organisation")
#: the role API keys act with (as in was.api_auth)
API_ROLE = "api"
#: who sees organisation books and contacts in no book, without a share
ORGANISATION_READERS = ("admin", "operator", "marketer", API_ROLE)
#: who adds to organisation books
ORGANISATION_EDITORS = ("admin", "marketer", API_ROLE)
#: the roles a book can be shared with
SHARE_ROLES = ("admin", "operator", "marketer", "user", API_ROLE)


class BookNotWritable(UmsError):
    """You may not add contacts to the address book {name!r}: {reason}."""


class CustomerIdTaken(UmsError):
    """Customer number {customer_id!r} already belongs to a contact you cannot see."""


class BadShare(UmsError):
    """Cannot share the address book: {reason}."""


@dataclass(frozen=True)
class Viewer:
    """Who reads or writes contacts: a person (``user_id`` and ``role``), an API
    key (role ``api`` and its ``system``), or the administrator's CLI."""

    user_id: int | None
    role: str
    system: str | None = None
    everything: bool = False

    @classmethod
    def of(cls, session: dict) -> "Viewer":
        """The viewer of a WAS session (a login or an API key's)."""
        if session.get("api"):
            return cls(None, API_ROLE, session.get("system"))
        return cls(session["user_id"], session["role"])

    @property
    def sees_organisation(self) -> bool:
        return self.everything or self.role in ORGANISATION_READERS


#: ``ums contacts``: every book and every contact
ADMINISTRATOR = Viewer(None, "admin", everything=True)


def _shared_with(viewer: Viewer):
    """The book (address_books row in the query) is shared with the viewer's role or with the viewer."""
    whom = address_book_shares.c.role == viewer.role
    if viewer.user_id is not None:
        whom = or_(whom, address_book_shares.c.user_id == viewer.user_id)
    return exists().where(address_book_shares.c.book_id == address_books.c.id, whom)


def _own(viewer: Viewer):
    return address_books.c.owner_id == viewer.user_id if viewer.user_id is not None else false()


def readable_books(viewer: Viewer):
    """The condition on ``address_books`` rows the viewer may read (see the module docstring)."""
    if viewer.everything:
        return true()
    scope = address_books.c.scope
    shared = or_(_own(viewer), _shared_with(viewer), true() if viewer.role == "admin" else false())
    organisation = true() if viewer.role in ORGANISATION_READERS else _shared_with(viewer)
    return or_(
        (scope == "personal") & _own(viewer),
        (scope == "shared") & shared,
        (scope == "organisation") & organisation,
    )


def campaign_books():
    """The condition on ``address_books`` rows a campaign's audience may name:
    any book but a personal one (a personal book is its owner's alone)."""
    return address_books.c.scope != "personal"


def campaign_contacts():
    """The condition on ``contacts`` rows a campaign without books reaches: those
    in a book a campaign may name, or in no book — not those kept only in
    somebody's personal book."""
    in_campaign_book = contacts.c.id.in_(
        select(address_book_entries.c.contact_id)
        .join(address_books, address_books.c.id == address_book_entries.c.book_id)
        .where(campaign_books()))
    in_no_book = ~exists().where(address_book_entries.c.contact_id == contacts.c.id)
    return or_(in_campaign_book, in_no_book)


def visible_contacts(viewer: Viewer):
    """The condition on ``contacts`` rows the viewer may see: in a book the
    viewer reads, or — for those who see the organisation's — in no book."""
    if viewer.everything:
        return true()
    seen_books = select(address_books.c.id).where(readable_books(viewer))
    in_seen_book = contacts.c.id.in_(
        select(address_book_entries.c.contact_id).where(address_book_entries.c.book_id.in_(seen_books)))
    if not viewer.sees_organisation:
        return in_seen_book
    in_no_book = ~exists().where(address_book_entries.c.contact_id == contacts.c.id)
    return or_(in_seen_book, in_no_book)


def may_write(viewer: Viewer, book: dict) -> bool:
    """Whether the viewer may add contacts to ``book``, a book it reads."""
    if viewer.everything:
        return True
    if book["scope"] == "personal":
        return book["owner_id"] is not None and book["owner_id"] == viewer.user_id
    if book["scope"] == "organisation":
        return viewer.role in ORGANISATION_EDITORS
    return True


def may_manage(viewer: Viewer, book: dict) -> bool:
    """Whether the viewer may change who ``book`` is shared with: admins for
    shared and organisation books, and whoever made a shared book. Personal
    books are never shared."""
    if book["scope"] == "personal":
        return False
    if viewer.everything or viewer.role == "admin":
        return True
    return book["scope"] == "shared" and book["owner_id"] is not None and book["owner_id"] == viewer.user_id


async def shares_of(conn: AsyncConnection, book_ids: list[int]) -> dict[int, dict]:
    """Per book: ``roles`` and ``users`` (id, username, display name) it is shared with."""
    found = {book_id: {"roles": [], "users": []} for book_id in book_ids}
    if not book_ids:
        return found
    rows = await conn.execute(
        select(address_book_shares.c.book_id, address_book_shares.c.role, users.c.id, users.c.username,
               users.c.display_name)
        .select_from(address_book_shares.outerjoin(users, users.c.id == address_book_shares.c.user_id))
        .where(address_book_shares.c.book_id.in_(book_ids))
        .order_by(address_book_shares.c.role, users.c.username)
    )
    for row in rows:
        if row.role:
            found[row.book_id]["roles"].append(row.role)
        elif row.id is not None:
            found[row.book_id]["users"].append(
                {"id": row.id, "username": row.username, "display_name": row.display_name})
    return found


async def _described(conn: AsyncConnection, viewer: Viewer, rows: list[dict]) -> list[dict]:
    shares = await shares_of(conn, [row["id"] for row in rows])
    for row in rows:
        row.update(shared_with=shares[row["id"]], writable=may_write(viewer, row), manageable=may_manage(viewer, row))
    return rows


async def visible_books(conn: AsyncConnection, viewer: Viewer | int | None) -> list[dict]:
    """The books the viewer reads, each with ``shared_with``, ``writable`` and
    ``manageable``. A bare user id stands for that user with their role."""
    if not isinstance(viewer, Viewer):
        viewer = await viewer_of_user(conn, viewer)
    query = select(address_books).where(readable_books(viewer)).order_by(address_books.c.scope, address_books.c.name)
    return await _described(conn, viewer, [dict(row._mapping) for row in await conn.execute(query)])


async def viewer_of_user(conn: AsyncConnection, user_id: int | None) -> Viewer:
    """The viewer a user id stands for (its role from ``users``; nobody for None or an unknown id)."""
    role = await conn.scalar(select(users.c.role).where(users.c.id == user_id)) if user_id is not None else None
    return Viewer(user_id, role or "")


async def book(conn: AsyncConnection, viewer: Viewer, book_id: int) -> dict | None:
    """Book ``book_id`` as the viewer sees it (None when missing or not theirs to read)."""
    query = select(address_books).where(address_books.c.id == book_id, readable_books(viewer))
    row = (await conn.execute(query)).first()
    return (await _described(conn, viewer, [dict(row._mapping)]))[0] if row else None


async def writable_book_named(conn: AsyncConnection, viewer: Viewer, name: str) -> int:
    """The id of a book named ``name`` the viewer may add to, made when the viewer
    sees none of that name: an organisation book for an API key, else a shared
    book the viewer owns. A book of that name the viewer sees but may not add to
    is a :class:`BookNotWritable`."""
    query = select(address_books).where(address_books.c.name == name, readable_books(viewer))
    seen = [dict(row._mapping) for row in await conn.execute(query.order_by(address_books.c.id))]
    for found in seen:
        if may_write(viewer, found):
            return found["id"]
    if seen:
        raise BookNotWritable(name=name, reason="only admins and marketers add to the organisation's books")
    if viewer.role == API_ROLE or viewer.everything:
        return await ensure_book(conn, name, "organisation")
    return await ensure_book(conn, name, "shared", viewer.user_id)


async def find_book(conn: AsyncConnection, name: str, owner_id: int | None = None) -> int | None:
    """The id of the book named ``name`` of ``owner_id`` (or of nobody), if there is one."""
    query = select(address_books.c.id).where(address_books.c.name == name)
    query = query.where(address_books.c.owner_id == owner_id if owner_id else address_books.c.owner_id.is_(None))
    return await conn.scalar(query.order_by(address_books.c.id).limit(1))


async def ensure_book(conn: AsyncConnection, name: str, scope: str = "organisation", owner_id: int | None = None) -> int:
    """The id of the named book of ``owner_id`` (or of nobody), created when missing."""
    found = await find_book(conn, name, owner_id)
    if found is not None:
        return found
    result = await conn.execute(insert(address_books).values(name=name, scope=scope, owner_id=owner_id))
    return result.inserted_primary_key[0]


async def set_scope(conn: AsyncConnection, book_id: int, scope: str) -> None:
    """Make a book without an owner shared or organisation (a personal book stays its owner's)."""
    if scope not in ("shared", "organisation"):
        raise BadShare(reason=f"a book is made shared or organisation, not {scope!r}")
    await conn.execute(update(address_books).where(address_books.c.id == book_id, address_books.c.scope != "personal")
                       .values(scope=scope))


#: where a new contact of someone who does not see the organisation's lands when no book is named
OWN_BOOK = "My contacts"


async def landing_book(conn: AsyncConnection, viewer: Viewer) -> int | None:
    """The book a new contact made without a book goes to, so its maker still
    sees it: none (an organisation contact) for those who see the
    organisation's, else the viewer's own personal book :data:`OWN_BOOK`."""
    if viewer.sees_organisation or viewer.user_id is None:
        return None
    return await ensure_book(conn, OWN_BOOK, "personal", viewer.user_id)


async def share(conn: AsyncConnection, book_id: int, roles: list[str], user_ids: list[int]) -> None:
    """Share book ``book_id`` with exactly ``roles`` and ``user_ids`` (replacing
    its sharing). The caller checks :func:`may_manage`."""
    unknown = sorted(set(roles) - set(SHARE_ROLES))
    if unknown:
        raise BadShare(reason=f"unknown role {unknown[0]!r} (one of {', '.join(SHARE_ROLES)})")
    found = set((await conn.execute(select(users.c.id).where(users.c.id.in_(user_ids)))).scalars()) if user_ids else set()
    if set(user_ids) - found:
        raise BadShare(reason="no such user")
    await conn.execute(delete(address_book_shares).where(address_book_shares.c.book_id == book_id))
    rows = [{"book_id": book_id, "role": role, "user_id": None} for role in dict.fromkeys(roles)]
    rows += [{"book_id": book_id, "role": None, "user_id": user_id} for user_id in dict.fromkeys(user_ids)]
    if rows:
        await conn.execute(insert(address_book_shares), rows)


def _search(query, text: str | None):
    if text:
        pattern = f"%{text.strip().lower()}%"
        query = query.where(or_(*(
            contacts.c[name].ilike(pattern) for name in ("name", "email", "fax", "phone", "customer_id", "grade")
        )))
    return query


async def search(
    conn: AsyncConnection, viewer: Viewer, text: str | None = None, book_id: int | None = None, limit: int = 500,
    contact_id: int | None = None,
) -> list[dict]:
    """The contacts the viewer sees, optionally of one book, matching ``text``."""
    query = select(contacts).where(visible_contacts(viewer)).order_by(contacts.c.name, contacts.c.id).limit(limit)
    if book_id is not None:
        members = select(address_book_entries.c.contact_id).where(address_book_entries.c.book_id == book_id)
        query = query.where(contacts.c.id.in_(members))
    if contact_id is not None:
        query = query.where(contacts.c.id == contact_id)
    return [dict(row._mapping) for row in await conn.execute(_search(query, text))]


async def contact(conn: AsyncConnection, viewer: Viewer, contact_id: int) -> dict | None:
    """Contact ``contact_id`` when the viewer sees it, else None."""
    found = await search(conn, viewer, contact_id=contact_id, limit=1)
    return found[0] if found else None


async def find_match(conn: AsyncConnection, viewer: Viewer, fields: dict) -> dict | None:
    """The existing contact, among those the viewer sees, an imported record
    stands for: same customer id, else same email, else same fax or phone number."""
    for key in ("customer_id", "email", "fax", "phone"):
        value = fields.get(key)
        if value:
            query = select(contacts).where(contacts.c[key] == value, visible_contacts(viewer)).limit(1)
            row = (await conn.execute(query)).first()
            if row is not None:
                return dict(row._mapping)
    return None


async def check_customer_id(conn: AsyncConnection, customer_id: str | None, contact_id: int | None = None) -> None:
    """:class:`CustomerIdTaken` when another contact has ``customer_id`` (customer numbers are unique)."""
    if not customer_id:
        return
    query = select(contacts.c.id).where(contacts.c.customer_id == customer_id)
    if contact_id is not None:
        query = query.where(contacts.c.id != contact_id)
    if await conn.scalar(query.limit(1)) is not None:
        raise CustomerIdTaken(customer_id=customer_id)


async def save_contact(conn: AsyncConnection, fields: dict, now: datetime, contact_id: int | None = None) -> int:
    """Create a contact or update ``contact_id`` (the caller checked that the
    viewer sees it); a customer number another contact has is refused."""
    values = {key: fields.get(key) or None for key in CONTACT_FIELDS if key in fields}
    await check_customer_id(conn, values.get("customer_id"), contact_id)
    if contact_id is None:
        result = await conn.execute(insert(contacts).values(**values, created_at=now, updated_at=now))
        return result.inserted_primary_key[0]
    await conn.execute(update(contacts).where(contacts.c.id == contact_id).values(**values, updated_at=now))
    return contact_id


async def add_to_book(conn: AsyncConnection, book_id: int, contact_id: int) -> None:
    present = await conn.scalar(select(address_book_entries.c.book_id).where(
        address_book_entries.c.book_id == book_id, address_book_entries.c.contact_id == contact_id))
    if present is None:
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
