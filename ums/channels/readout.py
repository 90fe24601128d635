"""The text a "read it to me" conversion (:mod:`ums.sieve.delivery`) carries:
what a call speaks, what a mailed fax says under its pages. MAS queues the
conversion with ``read_entry`` (the mailbox entry) and, for an email,
``read_text`` (its text as stored for search). A fax's text is recognised
after it is stored, so the channel looks it up when it sends
(:func:`with_text`); while there is none yet the attempt is TEMPORARY and PASS
tries again later.

:func:`fax_pages` is the one place that asks for a fax's text: the pages
Tesseract recognised (:func:`ums.store.mailbox.fax_text`); when the fax could
not be read (no text found, or no recogniser installed) the gateway mail's own
text, as one page, so a call is never retried for a text that will not come.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import mailbox_messages, message_bodies
from ..store import mailbox

#: at most this much text is read in one call (a call is also bounded by [voice] max_call_seconds)
READ_CHARS = 2000


async def fax_pages(conn: AsyncConnection, entry_id: int) -> list[str]:
    """The text of each page of a stored fax (empty while it is still being read)."""
    pages = [page for page in await mailbox.fax_text(conn, entry_id) if page.strip()]
    if pages:
        return pages
    body_id = await conn.scalar(select(mailbox_messages.c.body_id).where(mailbox_messages.c.id == entry_id))
    if body_id is None or await mailbox.text_state(conn, body_id) == mailbox.PENDING:
        return []
    text = await conn.scalar(select(message_bodies.c.search_text).where(message_bodies.c.id == body_id))
    return [text] if text and text.strip() else []


async def text_to_read(db, variables: dict, limit: int = READ_CHARS) -> str:
    """``read_text`` when MAS gave it, else the entry's fax text; "" while there is none."""
    text = (variables.get("read_text") or "").strip()
    if not text and variables.get("read_entry"):
        async with db.connect() as conn:
            text = " ".join(page.strip() for page in await fax_pages(conn, int(variables["read_entry"])))
    return " ".join(text.split())[:limit]


async def with_text(db, delivery, limit: int = READ_CHARS):
    """``delivery`` (a :class:`ums.channels.Delivery` a conversion queued) with its
    ``read_text`` filled in when it is sent; None while the message has no text yet
    (the channel answers TEMPORARY and PASS tries again)."""
    text = await text_to_read(db, delivery.variables, limit)
    if not text:
        return None
    return dataclasses.replace(delivery, variables={**delivery.variables, "read_text": text})
