"""The unified mailbox (MAS writes, WAS reads): mailboxes and their messages.

A message is stored once, however many mailboxes and folders file it: its
bytes are one ``message_bodies`` row (keyed by their SHA-256, so the same
message arriving again is not stored twice either), and each filing is a
``mailbox_messages`` entry pointing at it (``body_id``). A message to 100
recipients costs its size once, not 100 times. Readers get ``raw`` through
:func:`message` (and :mod:`ums.store.web`), never from the entry table.

A ``mailbox_messages`` row is one message filed into one folder of one
mailbox. Its columns: ``media`` (email, fax or voice), ``pages`` (fax page
count), ``duration`` (voice mail seconds), ``classification`` (reply, refusal,
unsubscribe, bounce, fax, voice, notice), ``flags`` (JSON list of IMAP flags
such as ``\\Seen``), ``contact_id`` (the customer matched by sender address),
``delivery_id`` (the outbound delivery it answers or bounces — for an
entry of the Sent folder, classification ``sent``, the delivery that sends
it), ``defects`` (MIME problems, one per line), ``thread_key`` (its
conversation) and ``body_id`` (the message exactly as received, in
``message_bodies``, with its ``search_text``).

Whoever files a message gets its index for free: :func:`store_message` and
:func:`store_messages` extract the search text of each new body and the
thread of each entry (:mod:`ums.mailindex`) — in a thread when the batch is
big, so the event loop keeps serving. A mailbox has one owner (a web user,
``owner_id``); a user may own several.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime

from sqlalchemy import Integer, bindparam, delete, func, insert, select, text as sql_text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import mailindex
from ..addresses import check as check_address
from ..db import onetrip
from ..db.models import SEARCH_INDEX_TABLE, contacts, document_reads, mailbox_messages, mailboxes, message_bodies, message_pages, users
from ..errors import UmsError

#: bytes of new messages in one batch above which they are indexed off the event loop
INDEX_IN_THREAD_BYTES = 256 * 1024
#: ``message_bodies.text_state`` of a message whose documents are still to be read
PENDING = "pending"
#: … of one whose documents could not be read (it stays found by its body text)
FAILED = "failed"

#: what a reader gets for one entry: its columns and the stored message's bytes
ENTRY_WITH_RAW = (*mailbox_messages.c, message_bodies.c.raw)


async def by_address(conn: AsyncConnection, address: str) -> dict | None:
    row = (
        await conn.execute(select(mailboxes).where(mailboxes.c.address == address.strip().lower()))
    ).first()
    return dict(row._mapping) if row else None


async def get(conn: AsyncConnection, mailbox_id: int) -> dict | None:
    row = (await conn.execute(select(mailboxes).where(mailboxes.c.id == mailbox_id))).first()
    return dict(row._mapping) if row else None


async def create(
    conn: AsyncConnection, address: str, now: datetime, owner_id: int | None = None,
    notify_channel: str = "none", notify_address: str | None = None,
) -> int:
    result = await conn.execute(
        insert(mailboxes).values(
            address=address.strip().lower(), owner_id=owner_id, notify_channel=notify_channel,
            notify_address=notify_address, created_at=now,
        )
    )
    return result.inserted_primary_key[0]


async def ensure(conn: AsyncConnection, address: str, now: datetime) -> dict:
    """The mailbox for ``address``, created (quiet, no owner) if it does not exist yet."""
    found = await by_address(conn, address)
    if found is None:
        try:
            async with conn.begin_nested():
                await create(conn, address, now)
        except IntegrityError:  # a concurrent session created it first
            pass
        found = await by_address(conn, address)
    return found


def body_digest(raw: bytes) -> str:
    """The key a message is stored under (SHA-256, hex)."""
    return hashlib.sha256(raw).hexdigest()


async def store_bodies(conn: AsyncConnection, bodies: dict[str, bytes], texts: dict[str, str] | None = None,
                       documents: dict[str, bool] | None = None) -> None:
    """Store many messages' bytes (:func:`body_digest` → raw bytes), each unless the same
    bytes are stored already. ``texts`` are search texts and ``documents`` whether each
    carries a document (:func:`ums.mailindex.has_documents`), found already (by MAS, before
    the writer); the rest are found here. A body with a document is stored ``pending``
    (:func:`pending_bodies`). On SQLite the new bodies join the full-text index too."""
    await onetrip.execute_all(conn, await _body_steps(conn, bodies, texts, documents))


async def _body_steps(conn: AsyncConnection, bodies: dict[str, bytes], texts: dict[str, str] | None,
                      documents: dict[str, bool] | None) -> list[onetrip.Step]:
    """The statements that store ``bodies`` (:func:`store_bodies`) and index them."""
    if not bodies:
        return []
    texts, documents = dict(texts or {}), dict(documents or {})
    missing = {digest: raw for digest, raw in bodies.items() if digest not in texts or digest not in documents}

    def index_missing():
        return {digest: mailindex.extract(raw) for digest, raw in missing.items()}

    for digest, (text, document) in (await _off_loop_if_big(sum(map(len, missing.values())), index_missing)).items():
        texts.setdefault(digest, text)
        documents.setdefault(digest, document)
    rows = [{"sha256": digest, "size": len(raw), "raw": raw, "search_text": texts[digest],
             "text_state": PENDING if documents[digest] else None} for digest, raw in bodies.items()]
    return [onetrip.Step(_insert_bodies(conn.dialect.name), rows), *search_index_steps(conn, list(bodies))]


def search_index_steps(conn: AsyncConnection, digests: list[str]) -> list[onetrip.Step]:
    """The statement that adds the bodies just stored to SQLite's full-text table
    (PostgreSQL's GIN index keeps itself)."""
    if conn.dialect.name != "sqlite":
        return []
    return [onetrip.Step(_INDEX_NEW_BODY, [{"digest": digest} for digest in digests])]


def _insert_bodies(dialect_name: str):
    return _INSERT_BODIES_POSTGRES if dialect_name == "postgresql" else _INSERT_BODIES_SQLITE


_INSERT_BODIES_SQLITE, _INSERT_BODIES_POSTGRES = (
    module.insert(message_bodies).on_conflict_do_nothing(index_elements=[message_bodies.c.sha256])
    for module in (sqlite, postgresql))

#: a body just stored, into SQLite's full-text table (migration 0010) — one statement per
#: batch, not a trigger per row, which costs five times as much on MAS's writer
_INDEX_NEW_BODY = sql_text(
    f"INSERT INTO {SEARCH_INDEX_TABLE}(rowid, search_text) SELECT id, search_text FROM message_bodies "
    f"WHERE sha256 = :digest AND NOT EXISTS (SELECT 1 FROM {SEARCH_INDEX_TABLE} WHERE rowid = message_bodies.id)"
)


async def ensure_many(conn: AsyncConnection, addresses, now: datetime) -> dict[str, dict]:
    """:func:`ensure` for many addresses in at most three statements (address → mailbox)."""
    wanted = {address.strip().lower() for address in addresses}
    if not wanted:
        return {}
    found = await _by_addresses(conn, wanted)
    missing = wanted - set(found)
    if missing:
        module = postgresql if conn.dialect.name == "postgresql" else sqlite
        await conn.execute(module.insert(mailboxes).on_conflict_do_nothing(index_elements=[mailboxes.c.address]),
                           [{"address": address, "created_at": now} for address in sorted(missing)])
        found.update(await _by_addresses(conn, missing))
    return found


async def _by_addresses(conn: AsyncConnection, addresses: set[str]) -> dict[str, dict]:
    rows = await conn.execute(select(mailboxes).where(mailboxes.c.address.in_(addresses)))
    return {row.address: dict(row._mapping) for row in rows}


#: one filed message: its stored bytes found by their digest, and its customer matched by
#: the sender's address (``match_contact``; the oldest such customer) or else ``contact_id``
#: — in the statement itself, so a batch of mail costs two statements whatever its senders
_INSERT_ENTRY = insert(mailbox_messages).values(
    body_id=select(message_bodies.c.id).where(message_bodies.c.sha256 == bindparam("digest")).scalar_subquery(),
    contact_id=func.coalesce(
        select(func.min(contacts.c.id)).where(contacts.c.email == bindparam("match_contact")).scalar_subquery(),
        bindparam("known_contact_id", type_=Integer),
    ),
)


async def store_message(conn: AsyncConnection, **fields) -> int:
    """Insert one filed message; ``fields`` are ``mailbox_messages`` columns, with ``raw``
    (and optionally its ``digest``) in place of ``body_id``, and optionally ``match_contact``:
    an address whose customer, if there is one, takes the place of ``contact_id``."""
    params, body_steps = await _entry_params(conn, [fields])
    await onetrip.execute_all(conn, body_steps)
    result = await conn.execute(_INSERT_ENTRY, params[0])
    return result.inserted_primary_key[0]


async def store_messages(conn: AsyncConnection, rows: list[dict]) -> None:
    """Insert many filed messages (rows as for :func:`store_message`, sharing the same
    columns): each distinct message stored once, then every entry — on SQLite all in one
    trip to the driver (:mod:`ums.db.onetrip`), which is most of MAS's writer's time."""
    if rows:
        params, body_steps = await _entry_params(conn, rows)
        await onetrip.execute_all(conn, [*body_steps, onetrip.Step(_INSERT_ENTRY, params)])


async def _off_loop_if_big(size: int, work):
    return await asyncio.to_thread(work) if size > INDEX_IN_THREAD_BYTES else work()


async def _entry_params(conn: AsyncConnection, rows: list[dict]) -> tuple[list[dict], list[onetrip.Step]]:
    """The parameters of :data:`_INSERT_ENTRY` for each of ``rows``, with its ``thread_key``
    (unless it has one) and its Message-ID from the headers; and the statements that
    store their bytes first (:func:`store_bodies`)."""
    bodies, texts, documents, params = {}, {}, {}, []
    threads = await _threads(conn, rows)
    for row, (headers, key) in zip(rows, threads):
        row = dict(row)
        raw = row.pop("raw")
        row.pop("thread_headers", None)
        digest = row.pop("digest", None) or body_digest(raw)
        bodies.setdefault(digest, raw)
        text = row.pop("search_text", None)
        if text is not None:
            texts[digest] = text
        document = row.pop("has_documents", None)
        if document is not None:
            documents[digest] = document
        if "thread_key" not in row:
            row["thread_key"] = key
        if not row.get("message_id") and headers and headers.message_id:
            row["message_id"] = headers.message_id
        row["match_contact"] = row.get("match_contact")
        row["known_contact_id"] = row.pop("contact_id", None)
        params.append({**row, "digest": digest})
    return params, await _body_steps(conn, bodies, texts, documents)


async def _threads(conn: AsyncConnection, rows: list[dict]) -> list[tuple]:
    """The thread headers and conversation of each row (:func:`ums.mailindex.thread_key`):
    answers join the thread of a filed message they answer, in the database or
    earlier in ``rows``."""
    found = [row.get("thread_headers") or (mailindex.thread_headers(row["raw"]) if "raw" in row else None)
             for row in rows]
    answered = {headers.in_reply_to for headers in found if headers and headers.in_reply_to}
    known: dict[str, str] = {}
    if answered:
        known.update((await conn.execute(
            select(mailbox_messages.c.message_id, mailbox_messages.c.thread_key)
            .where(mailbox_messages.c.message_id.in_(answered), mailbox_messages.c.thread_key.is_not(None))
        )).all())
    threads = []
    for headers in found:
        key = mailindex.thread_key(headers, known) if headers else None
        if headers and headers.message_id and key:
            known.setdefault(headers.message_id, key)
        threads.append((headers, key))
    return threads


async def messages(
    conn: AsyncConnection, mailbox_id: int | None = None, folder: str | None = None, limit: int = 100,
) -> list[dict]:
    """Newest first, without the raw bytes."""
    query = select(mailbox_messages).order_by(mailbox_messages.c.id.desc()).limit(limit)
    if mailbox_id is not None:
        query = query.where(mailbox_messages.c.mailbox_id == mailbox_id)
    if folder is not None:
        query = query.where(mailbox_messages.c.folder == folder)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def message(conn: AsyncConnection, message_id: int) -> dict | None:
    """One message with its raw bytes."""
    row = (await conn.execute(with_raw(select(*ENTRY_WITH_RAW)).where(mailbox_messages.c.id == message_id))).first()
    return dict(row._mapping) if row else None


def with_raw(query):
    """``query`` over :data:`ENTRY_WITH_RAW`, joined to the stored message."""
    return query.select_from(mailbox_messages.join(message_bodies, message_bodies.c.id == mailbox_messages.c.body_id))


# --- the text of documents (fax pages, PDF pages) ---------------------------------------

async def fax_text(conn: AsyncConnection, entry_id: int) -> list[str]:
    """The text of each page of the entry's document (a fax recognised, a PDF read), in
    page order; empty while it is still being read, or when it has none."""
    query = (select(message_pages.c.text)
             .select_from(message_pages.join(mailbox_messages, mailbox_messages.c.body_id == message_pages.c.body_id))
             .where(mailbox_messages.c.id == entry_id).order_by(message_pages.c.page))
    return list(await conn.scalars(query))


async def search_text(conn: AsyncConnection, entry_id: int) -> str | None:
    """The entry's whole text as search reads it — sender, subject, body and its
    documents' pages, case-folded — on both databases (on SQLite the pages are added in
    the full-text table only: :func:`store_document_text`)."""
    body_id = select(mailbox_messages.c.body_id).where(mailbox_messages.c.id == entry_id).scalar_subquery()
    if conn.dialect.name == "sqlite":
        found = await conn.scalar(sql_text(f"SELECT search_text FROM {SEARCH_INDEX_TABLE} WHERE rowid = :id"),
                                  {"id": await conn.scalar(select(body_id))})
        if found is not None:
            return found
    return await conn.scalar(select(message_bodies.c.search_text).where(message_bodies.c.id == body_id))


async def sent_fax_text(conn: AsyncConnection, delivery_id: int) -> list[str]:
    """The text recognised on each page of the fax that delivery ``delivery_id`` sent."""
    query = (select(message_pages.c.text).where(message_pages.c.delivery_id == delivery_id)
             .order_by(message_pages.c.page))
    return list(await conn.scalars(query))


async def text_state(conn: AsyncConnection, body_id: int) -> str | None:
    """Whether a stored message's documents are still to be read (:data:`PENDING`), could
    not be (:data:`FAILED`), or are read or absent (None)."""
    row = (await conn.execute(
        select(message_bodies.c.text_state, document_reads.c.state)
        .select_from(message_bodies.outerjoin(document_reads, document_reads.c.body_id == message_bodies.c.id))
        .where(message_bodies.c.id == body_id))).first()
    if row is None or row.text_state != PENDING:
        return None
    return FAILED if row.state == FAILED else None if row.state else PENDING


async def pending_bodies(conn: AsyncConnection, limit: int = 10) -> list[dict]:
    """Stored messages whose documents are still to be read (oldest first): id and raw."""
    unread = ~select(document_reads.c.body_id).where(document_reads.c.body_id == message_bodies.c.id).exists()
    rows = await conn.execute(select(message_bodies.c.id, message_bodies.c.raw)
                              .where(message_bodies.c.text_state == PENDING, unread)
                              .order_by(message_bodies.c.id).limit(limit))
    return [{"id": row.id, "raw": bytes(row.raw)} for row in rows]


async def store_document_text(conn: AsyncConnection, body_id: int, pages: list[str] | None, raw: bytes,
                              now: datetime) -> bool:
    """Keep the text of each page of a stored message's documents and add it to what
    the search reads; ``pages=None``: they could not be read (:data:`FAILED`). False,
    storing nothing, when another MAS process stored them first. The message's own row
    is not rewritten on SQLite (it holds the message's bytes): the text goes to the
    full-text table only, which is what search and snippets read there."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    marked = await conn.execute(module.insert(document_reads).on_conflict_do_nothing(
        index_elements=[document_reads.c.body_id]).values(body_id=body_id, state=FAILED if pages is None else "read",
                                                          read_at=now))
    if marked.rowcount == 0:
        return False
    if not pages:
        return True
    await conn.execute(insert(message_pages), [{"body_id": body_id, "page": number, "text": text}
                                               for number, text in enumerate(pages, start=1)])
    searched = mailindex.with_documents(mailindex.searchable_text(raw), pages)
    if conn.dialect.name == "sqlite":
        await conn.execute(sql_text(f"DELETE FROM {SEARCH_INDEX_TABLE} WHERE rowid = :id"), {"id": body_id})
        await conn.execute(sql_text(f"INSERT INTO {SEARCH_INDEX_TABLE}(rowid, search_text) VALUES (:id, :text)"),
                           {"id": body_id, "text": searched})
    else:
        await conn.execute(update(message_bodies).where(message_bodies.c.id == body_id).values(search_text=searched))
    return True


async def store_sent_fax_text(conn: AsyncConnection, delivery_id: int, pages: list[str]) -> None:
    """Keep the text recognised on each page of an outbound fax (its last rendering)."""
    await conn.execute(delete(message_pages).where(message_pages.c.delivery_id == delivery_id))
    if pages:
        await conn.execute(insert(message_pages), [{"delivery_id": delivery_id, "page": number, "text": text}
                                                   for number, text in enumerate(pages, start=1)])


async def count(conn: AsyncConnection) -> int:
    return await conn.scalar(select(func.count()).select_from(mailbox_messages))


async def stored_bytes(conn: AsyncConnection) -> int:
    """The bytes of every stored message, each counted once (what the mailbox costs)."""
    return await conn.scalar(select(func.coalesce(func.sum(message_bodies.c.size), 0)))


# --- owners ------------------------------------------------------------------------------

class NotLocalAddress(UmsError):
    """{address} is not at a domain MAS receives mail for ({domains}): its mailbox would stay empty."""


class TaggedAddress(UmsError):
    """{address} has a +tag: MAS files user+tag@domain into user@domain, so assign that address."""


class NoSuchMailbox(UmsError):
    """No mailbox {address}."""


def assignable_address(address: str, local_domains) -> str:
    """``address`` as a mailbox is keyed (lower case), if mail to it can arrive:
    a valid address at one of MAS's ``local_domains`` with no ``+tag``; else why not."""
    address = check_address("email", address).lower()
    local, _, domain = address.rpartition("@")
    if domain not in {name.lower() for name in local_domains}:
        raise NotLocalAddress(address=address, domains=", ".join(local_domains) or "none configured")
    if "+" in local:
        raise TaggedAddress(address=address)
    return address


async def assign(conn: AsyncConnection, address: str, owner_id: int, now: datetime) -> dict:
    """Give the mailbox ``address`` (created if new) to the user ``owner_id``; returns it."""
    box = await ensure(conn, address, now)
    await conn.execute(update(mailboxes).where(mailboxes.c.id == box["id"]).values(owner_id=owner_id))
    return {**box, "owner_id": owner_id}


async def unassign(conn: AsyncConnection, address: str) -> dict:
    """Take the mailbox ``address`` from its owner (its mail stays, seen by admins only)."""
    box = await by_address(conn, address)
    if box is None:
        raise NoSuchMailbox(address=address.strip().lower())
    await conn.execute(update(mailboxes).where(mailboxes.c.id == box["id"]).values(owner_id=None))
    return {**box, "owner_id": None}


async def with_owners(conn: AsyncConnection) -> list[dict]:
    """Every mailbox with its owner's user name (None when nobody owns it) and how
    many messages it holds, by address."""
    held = (select(mailbox_messages.c.mailbox_id, func.count().label("messages"))
            .group_by(mailbox_messages.c.mailbox_id).subquery())
    query = (
        select(mailboxes.c.id, mailboxes.c.address, mailboxes.c.owner_id, users.c.username.label("owner"),
               func.coalesce(held.c.messages, 0).label("messages"), mailboxes.c.created_at)
        .select_from(mailboxes.outerjoin(users, users.c.id == mailboxes.c.owner_id)
                     .outerjoin(held, held.c.mailbox_id == mailboxes.c.id))
        .order_by(mailboxes.c.address)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]


async def sent_from(conn: AsyncConnection, delivery_id: int) -> str | None:
    """The address of the mailbox whose Sent folder holds the message ``delivery_id`` sends."""
    return await conn.scalar(
        select(mailboxes.c.address)
        .select_from(mailbox_messages.join(mailboxes, mailboxes.c.id == mailbox_messages.c.mailbox_id))
        .where(mailbox_messages.c.delivery_id == delivery_id, mailbox_messages.c.classification == "sent")
        .limit(1))
