"""The text a "read it to me" call speaks (:mod:`ums.sieve.delivery`): MAS
queues the call with ``read_entry`` (the mailbox entry) and, for an email,
``read_text`` (its text as stored for search). A fax's text is recognised
after it is stored, so the call looks it up when it is placed; while there is
none yet the attempt is TEMPORARY and PASS tries again later.

:func:`fax_pages` is the one place that asks for a fax's text. Until the
inbox search's ``ums.store.mailbox.fax_text(conn, entry_id)`` (one string per
recognised page) is merged it reads the stored message's search text (the
gateway mail's body), as one page.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ...db.models import mailbox_messages, message_bodies

#: at most this much text is read in one call (a call is also bounded by [voice] max_call_seconds)
READ_CHARS = 2000


async def fax_pages(conn: AsyncConnection, entry_id: int) -> list[str]:
    """The text of each page of a stored fax (empty while none is known)."""
    text = await conn.scalar(
        select(message_bodies.c.search_text)
        .select_from(mailbox_messages.join(message_bodies, message_bodies.c.id == mailbox_messages.c.body_id))
        .where(mailbox_messages.c.id == entry_id)
    )
    return [text] if text and text.strip() else []


async def text_to_read(db, variables: dict) -> str:
    """``read_text`` when MAS gave it, else the entry's fax text; "" while there is none."""
    text = (variables.get("read_text") or "").strip()
    if not text and variables.get("read_entry"):
        async with db.connect() as conn:
            text = " ".join(page.strip() for page in await fax_pages(conn, int(variables["read_entry"])))
    return " ".join(text.split())[:READ_CHARS]
