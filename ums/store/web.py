"""Queries the web front end (WAS) needs: the unified inbox over the mailbox
tables, API keys, and the figures behind ``/metrics``.

The inbox search (``InboxQuery.search``): every word must be in the
message's search text — its sender, subject, body, fax pages and PDF text
(:mod:`ums.mailindex`) — as a substring. A word of three characters or more
is looked up in the trigram index (migration 0010: FTS5 ``MATCH`` on SQLite,
a ``LIKE`` the pg_trgm GIN index answers on PostgreSQL); a shorter one — a
two-syllable Korean word like ``환불`` — is a ``LIKE`` over the rows the rest
left (over the index's own narrow copy of the text on SQLite, when it is the
only word). Results are ranked when the query asks for
``sort="relevance"``: bm25 on SQLite, how often the words occur on
PostgreSQL; ties (and a search of short words only, on SQLite) newest
first. Each row found carries a ``snippet`` of its text around the first
match and ``snippet_html`` with every match marked (``<mark>``, the rest
escaped), read for the page's rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import String, cast, column, func, literal, literal_column, or_, select, table, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import mailindex
from ..db.models import SEARCH_INDEX_TABLE, deliveries, mailbox_messages, mailboxes, message_bodies, suppressions
from ..queue.states import PENDING_STATES
from . import as_utc
from .mailbox import ENTRY_WITH_RAW, with_raw

LIST_COLUMNS = [
    mailbox_messages.c.id, mailbox_messages.c.mailbox_id, mailbox_messages.c.folder,
    mailbox_messages.c.flags, mailbox_messages.c.media, mailbox_messages.c.classification,
    mailbox_messages.c.sender, mailbox_messages.c.recipient, mailbox_messages.c.subject,
    mailbox_messages.c.size, mailbox_messages.c.pages, mailbox_messages.c.duration,
    mailbox_messages.c.received_at, mailbox_messages.c.thread_key, mailbox_messages.c.delivery_id,
    mailbox_messages.c.body_id, mailboxes.c.address.label("mailbox"),
]
#: what an inbox may be sorted by
SORTS = {"received": mailbox_messages.c.received_at, "sender": mailbox_messages.c.sender,
         "subject": mailbox_messages.c.subject, "size": mailbox_messages.c.size}
#: the order of a search's results by how well they match (see the module's docstring)
RELEVANCE = "relevance"
#: the length of the trigram index's grams: a shorter word is matched without it
TRIGRAM = 3
#: the folder replies and forwards are filed in (classification ``sent``)
SENT = "Sent"


def _visible(query, user_id: int | None):
    """Mailbox users see their own mailboxes; ``user_id=None`` sees all."""
    if user_id is None:
        return query
    owned = select(mailboxes.c.id).where(mailboxes.c.owner_id == user_id)
    return query.where(mailbox_messages.c.mailbox_id.in_(owned))


@dataclass
class InboxQuery:
    """Which messages an inbox page lists, in which order, and which page of them."""

    media: str | None = None
    folder: str | None = None
    #: unseen, seen or flagged
    flag: str | None = None
    #: one mailbox's address
    mailbox: str | None = None
    #: words that sender, subject or body text must contain
    search: str | None = None
    #: received, sender, subject, size — or relevance (a search's best matches first)
    thread: str | None = None
    sort: str = "received"
    descending: bool = True
    offset: int = 0
    limit: int = 50


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(query, user_id: int | None, wanted: InboxQuery, dialect: str):
    query = _visible(query, user_id)
    if wanted.media:
        query = query.where(mailbox_messages.c.media == wanted.media)
    if wanted.folder:
        query = query.where(mailbox_messages.c.folder == wanted.folder)
    if wanted.mailbox:
        query = query.where(mailboxes.c.address == wanted.mailbox.strip().lower())
    if wanted.thread:
        query = query.where(mailbox_messages.c.thread_key == wanted.thread)
    seen = cast(mailbox_messages.c.flags, String)
    if wanted.flag == "unseen":
        query = query.where(or_(mailbox_messages.c.flags.is_(None), seen.not_like('%"seen"%')))
    elif wanted.flag:
        query = query.where(seen.like(f'%"{wanted.flag}"%'))
    words = mailindex.search_words(wanted.search)
    return _searched(query, words, dialect, user_id is None and not wanted.mailbox) if words else query


#: the SQLite full-text table (migration 0010): rowid is message_bodies.id
search_index = table(SEARCH_INDEX_TABLE, column("rowid"), column("search_text"))


def _indexed(words: list[str]) -> list[str]:
    """The words the trigram index can find (three characters or more)."""
    return [word for word in words if len(word) >= TRIGRAM]


def _searched(query, words: list[str], dialect: str, everyone: bool):
    """Only messages whose search text holds every word (see the module's docstring)."""
    if dialect != "sqlite":  # the pg_trgm GIN index answers LIKE for a word with a trigram
        return query.where(*(message_bodies.c.search_text.like(_like(word), escape="\\") for word in words))
    indexed = _indexed(words)
    # instr, not LIKE: FTS5 would take a LIKE of under three characters itself and match nothing
    short = [func.instr(search_index.c.search_text, word) > 0 for word in words if word not in indexed]
    if indexed:
        query = query.where(literal_column(SEARCH_INDEX_TABLE).op("MATCH")(
            " ".join('"' + word.replace('"', '""') + '"' for word in indexed)))
    elif everyone:  # short words only, over every mailbox: one pass over the index's text
        return query.where(mailbox_messages.c.body_id.in_(select(search_index.c.rowid).where(*short)))
    return query.where(*short)  # … over the few messages one user may read: each looked up


def _listed_from(wanted: InboxQuery, dialect: str, user_id: int | None):
    """The entries with their mailbox, and for a search the text it reads: the FTS5
    table on SQLite (by rowid: message_bodies, holding every message's bytes, is not
    read), message_bodies on PostgreSQL."""
    joined = mailbox_messages.join(mailboxes, mailboxes.c.id == mailbox_messages.c.mailbox_id)
    if words := mailindex.search_words(wanted.search):
        if dialect == "sqlite":
            if not _indexed(words) and user_id is None and not wanted.mailbox:
                return joined  # short words over every mailbox: a subquery (_searched)
            return joined.join(search_index, search_index.c.rowid == mailbox_messages.c.body_id)
        return joined.join(message_bodies, message_bodies.c.id == mailbox_messages.c.body_id)
    return joined


def _relevance(words: list[str], dialect: str):
    """Higher for a better match: bm25 of the FTS5 index on SQLite (over the indexed
    words; a search of short words only ranks none above another), on PostgreSQL how
    often the words occur."""
    if dialect == "sqlite":
        return -func.bm25(literal_column(SEARCH_INDEX_TABLE)) if _indexed(words) else literal(0)
    score = literal(0)
    for word in words:  # in bytes: counting characters would walk each text once more
        held = func.coalesce(message_bodies.c.search_text, "")
        score = score + (func.octet_length(held) - func.octet_length(func.replace(held, word, ""))) / len(
            word.encode())
    return score


async def inbox_page(conn: AsyncConnection, user_id: int | None, wanted: InboxQuery) -> tuple[list[dict], int]:
    """One page of the messages ``user_id`` may see (None: every mailbox) and how
    many there are in all. Each row names its ``mailbox``; a Sent entry carries
    its delivery's ``delivery_state`` (:func:`delivery_states`); a search's rows
    their ``snippet`` and ``snippet_html``."""
    dialect = conn.dialect.name
    words = mailindex.search_words(wanted.search)
    listed = _listed_from(wanted, dialect, user_id)
    # a search counts its matches in the same pass as it orders them (it reads them all
    # anyway) — but for bm25, which SQLite does not allow beside a window function; a
    # listing counts apart, so its page is read straight from the index
    counted = bool(words) and not (dialect == "sqlite" and wanted.sort == RELEVANCE and _indexed(words))
    columns = [*LIST_COLUMNS, func.count().over().label("matching")] if counted else LIST_COLUMNS
    query = _filtered(select(*columns).select_from(listed), user_id, wanted, dialect)
    rows = [_listed(row) for row in await conn.execute(query.order_by(*_order(wanted, words, dialect))
                                                      .offset(wanted.offset).limit(wanted.limit))]
    if counted and rows:
        total = rows[0]["matching"]
    else:
        total = await conn.scalar(_filtered(select(func.count()).select_from(listed), user_id, wanted, dialect))
    if words:
        await _with_snippets(conn, rows, words)
    await _with_delivery_states(conn, rows)
    await _with_thread_sizes(conn, user_id, rows)
    return rows, total


async def _with_snippets(conn: AsyncConnection, rows: list[dict], words: list[str]) -> None:
    """``snippet``: the search text around the first match of the first word (from the
    start when it is not there), and ``snippet_html``: the same with every match marked.
    Read for the page's rows only, after they are chosen."""
    source = search_index if conn.dialect.name == "sqlite" else message_bodies  # where documents' text is added
    key = source.c.rowid if source is search_index else source.c.id
    texts = dict((await conn.execute(select(key, source.c.search_text).where(
        key.in_({row["body_id"] for row in rows})))).all()) if rows else {}
    for row in rows:
        held = texts.get(row["body_id"]) or ""
        start = max(held.find(words[0]) - mailindex.SNIPPET_BEFORE, 0)
        row["snippet"] = held[start:start + mailindex.SNIPPET_CHARS]
        row["snippet_html"] = mailindex.highlight(row["snippet"], words)


def _order(wanted: InboxQuery, words: list[str], dialect: str) -> list:
    if wanted.sort == RELEVANCE and words:
        return [_relevance(words, dialect).desc(), mailbox_messages.c.received_at.desc(), mailbox_messages.c.id.desc()]
    column = SORTS.get(wanted.sort, SORTS["received"])
    if wanted.descending:
        return [column.desc(), mailbox_messages.c.id.desc()]
    return [column.asc(), mailbox_messages.c.id.asc()]


def _listed(row) -> dict:
    found = dict(row._mapping)
    found["flags"] = list(found["flags"] or [])
    found["received_at"] = as_utc(found["received_at"])
    return found


async def inbox(
    conn: AsyncConnection, user_id: int | None, media: str | None = None, folder: str | None = None,
    flag: str | None = None, limit: int = 200,
) -> list[dict]:
    """The newest ``limit`` messages ``user_id`` may see (see :func:`inbox_page`)."""
    rows, _ = await inbox_page(conn, user_id, InboxQuery(media=media, folder=folder, flag=flag, limit=limit))
    return rows


def delivery_state(state: str | None, bounced_at) -> str | None:
    """How a sent message stands, as its Sent folder shows it: queued (also while
    sending, retrying or waiting), sent, bounced (a bounce came back after it was
    sent), failed, suppressed, expired or cancelled."""
    if state is None:
        return None
    if bounced_at is not None:
        return "bounced"
    return "queued" if state in PENDING_STATES else state


async def delivery_states(conn: AsyncConnection, user_id: int | None, entry_ids: list[int]) -> dict[int, dict]:
    """The delivery of each Sent entry ``user_id`` may see: entry id →
    ``{"state", "detail"}`` (the last error or refusal, when there is one)."""
    if not entry_ids:
        return {}
    query = _visible(
        select(mailbox_messages.c.id, deliveries.c.state, deliveries.c.bounced_at, deliveries.c.last_error)
        .select_from(mailbox_messages.join(deliveries, deliveries.c.id == mailbox_messages.c.delivery_id))
        .where(mailbox_messages.c.id.in_(entry_ids[:500]), mailbox_messages.c.classification == "sent"),
        user_id)
    return {row.id: {"state": delivery_state(row.state, row.bounced_at), "detail": row.last_error}
            for row in await conn.execute(query)}


async def _with_delivery_states(conn: AsyncConnection, rows: list[dict]) -> None:
    sent = [row["id"] for row in rows if row["classification"] == "sent"]
    states = await delivery_states(conn, None, sent) if sent else {}
    for row in rows:
        found = states.get(row["id"])
        row["delivery_state"] = found["state"] if found else None


async def _with_thread_sizes(conn: AsyncConnection, user_id: int | None, rows: list[dict]) -> None:
    """``thread_size``: how many messages the viewer sees in each row's conversation."""
    keys = {row["thread_key"] for row in rows if row["thread_key"]}
    sizes = {}
    if keys:
        query = _visible(select(mailbox_messages.c.thread_key, func.count()).where(
            mailbox_messages.c.thread_key.in_(keys)).group_by(mailbox_messages.c.thread_key), user_id)
        sizes = dict((await conn.execute(query)).all())
    for row in rows:
        row["thread_size"] = sizes.get(row["thread_key"], 1)


async def thread(conn: AsyncConnection, user_id: int | None, key: str) -> list[dict]:
    """The conversation ``key`` as ``user_id`` sees it, oldest first (at most 200)."""
    rows, _ = await inbox_page(conn, user_id, InboxQuery(thread=key, descending=False, limit=200))
    return rows


async def mailbox_addresses(conn: AsyncConnection, user_id: int | None) -> list[str]:
    """The addresses of the mailboxes ``user_id`` owns (None: every mailbox)."""
    query = select(mailboxes.c.address).order_by(mailboxes.c.address)
    if user_id is not None:
        query = query.where(mailboxes.c.owner_id == user_id)
    return list(await conn.scalars(query))


async def folders(conn: AsyncConnection, user_id: int | None) -> list[str]:
    """The folder names ``user_id`` has mail in: INBOX and Sent first (always), then by name."""
    query = _visible(select(mailbox_messages.c.folder).distinct(), user_id)
    names = {row[0] for row in await conn.execute(query)} | {"INBOX", SENT}
    return sorted(names, key=lambda name: (name != "INBOX", name != SENT, name.lower()))


async def message(conn: AsyncConnection, user_id: int | None, message_id: int) -> dict | None:
    """One entry the user may see, with the stored message's bytes (``raw``)."""
    query = _visible(with_raw(select(*ENTRY_WITH_RAW)).where(mailbox_messages.c.id == message_id), user_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found["flags"] = list(found["flags"] or [])
    found["received_at"] = as_utc(found["received_at"])
    return found


async def set_flags(conn: AsyncConnection, message_id: int, flags: list[str]) -> None:
    await conn.execute(
        update(mailbox_messages).where(mailbox_messages.c.id == message_id).values(flags=sorted(set(flags)))
    )


async def move(conn: AsyncConnection, message_id: int, folder: str) -> None:
    await conn.execute(update(mailbox_messages).where(mailbox_messages.c.id == message_id).values(folder=folder))


async def delivery_counts(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    """(channel, state, count) over the whole delivery table."""
    query = select(deliveries.c.channel, deliveries.c.state, func.count()).group_by(
        deliveries.c.channel, deliveries.c.state
    )
    return [tuple(row) for row in await conn.execute(query)]


async def mailbox_counts(conn: AsyncConnection) -> list[tuple[str, int]]:
    query = select(mailbox_messages.c.media, func.count()).group_by(mailbox_messages.c.media)
    return [tuple(row) for row in await conn.execute(query)]


async def suppression_counts(conn: AsyncConnection) -> list[tuple[str, int]]:
    query = select(suppressions.c.channel, func.count()).group_by(suppressions.c.channel)
    return [tuple(row) for row in await conn.execute(query)]


async def all_users(conn: AsyncConnection) -> list[dict]:
    from ..db.models import users

    query = select(users.c.id, users.c.username, users.c.role, users.c.display_name, users.c.email,
                   users.c.disabled, users.c.created_at).order_by(users.c.username)
    return [dict(row._mapping) for row in await conn.execute(query)]


async def delivery(conn: AsyncConnection, delivery_id: int, senders: tuple[str, ...] | None = None) -> dict | None:
    """A delivery's public status (no token, no variables); with ``senders``,
    only a delivery one of them queued (its ``service_name``), else None."""
    columns = [deliveries.c[name] for name in (
        "id", "channel", "recipient", "kind", "state", "attempts", "due_at", "last_code", "last_error",
        "created_at", "finished_at", "campaign_id", "message_id")]
    query = select(*columns).where(deliveries.c.id == delivery_id)
    if senders is not None:
        query = query.where(deliveries.c.service_name.in_(senders))
    row = (await conn.execute(query)).first()
    return dict(row._mapping) if row else None


async def campaign_timeline(conn: AsyncConnection, campaign_id: int, tz=timezone.utc) -> list[tuple[str, str, str, int]]:
    """(hour in ``tz``, channel, final state, count) of a campaign's finished deliveries."""
    rows = await conn.execute(
        select(deliveries.c.finished_at, deliveries.c.channel, deliveries.c.state).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.finished_at.is_not(None))
    )
    counts: dict[tuple[str, str, str], int] = {}
    for finished_at, channel, state in rows:
        key = (as_utc(finished_at).astimezone(tz).strftime("%Y-%m-%d %H:00"), channel, state)
        counts[key] = counts.get(key, 0) + 1
    return [(*key, count) for key, count in sorted(counts.items())]


async def cdr_search(
    conn: AsyncConnection, start: datetime | None = None, end: datetime | None = None,
    medium: str | None = None, dst: str | None = None, limit: int = 500,
) -> list[dict]:
    """CDR rows, newest first, filtered by time range (start inclusive, end exclusive),
    medium and destination substring."""
    from ..db.models import cdr

    query = select(cdr).order_by(cdr.c.start.desc(), cdr.c.id.desc())
    if start:
        query = query.where(cdr.c.start >= start)
    if end:
        query = query.where(cdr.c.start < end)
    if medium:
        query = query.where(cdr.c.medium == medium)
    if dst:
        query = query.where(cdr.c.dst.ilike(f"%{dst}%"))
    rows = []
    for row in await conn.execute(query.limit(limit)):
        record = dict(row._mapping)
        for key in ("start", "answer", "end"):
            record[key] = as_utc(record[key])
        rows.append(record)
    return rows


async def billing_month(conn: AsyncConnection, start: datetime, end: datetime) -> list[dict]:
    """Per medium and source (campaign or service): final deliveries, delivered,
    pages, billed seconds and cost between ``start`` and ``end``."""
    from sqlalchemy import case

    from ..db.models import cdr

    delivered = func.sum(case((cdr.c.disposition == "ANSWERED", 1), else_=0))
    query = (
        select(cdr.c.medium, cdr.c.source, func.count().label("messages"), delivered.label("delivered"),
               func.coalesce(func.sum(cdr.c.pages), 0).label("pages"),
               func.coalesce(func.sum(cdr.c.billsec), 0).label("billsec"),
               func.coalesce(func.sum(cdr.c.cost), 0).label("cost"))
        .where(cdr.c.start >= start, cdr.c.start < end, cdr.c.final.is_(True))
        .group_by(cdr.c.medium, cdr.c.source).order_by(cdr.c.medium, cdr.c.source)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]


#: the name of the one script each mailbox edits in WAS
MAILBOX_RULE = "mailbox"


async def rule_mailboxes(conn: AsyncConnection, user_id: int | None) -> list[dict]:
    """Mailboxes (the user's own, or all) with their WAS-edited Sieve script."""
    from ..db.models import rules

    query = select(mailboxes.c.id, mailboxes.c.address).order_by(mailboxes.c.address)
    if user_id is not None:
        query = query.where(mailboxes.c.owner_id == user_id)
    boxes = [dict(row._mapping) for row in await conn.execute(query)]
    scripts = dict((await conn.execute(
        select(rules.c.mailbox_id, rules.c.script).where(rules.c.scope == "mailbox", rules.c.name == MAILBOX_RULE)
    )).all())
    for box in boxes:
        box["script"] = scripts.get(box["id"], "")
        box["error"] = None
    return boxes


async def save_mailbox_rule(conn: AsyncConnection, mailbox_id: int, script: str, now: datetime) -> None:
    from ..db.models import rules

    done = await conn.execute(
        update(rules).where(rules.c.scope == "mailbox", rules.c.mailbox_id == mailbox_id,
                            rules.c.name == MAILBOX_RULE).values(script=script, updated_at=now, active=True)
    )
    if done.rowcount == 0:
        await conn.execute(rules.insert().values(scope="mailbox", mailbox_id=mailbox_id, name=MAILBOX_RULE,
                                                 script=script, active=True, updated_at=now))
