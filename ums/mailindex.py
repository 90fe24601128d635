"""What the mailbox indexes of a message when it is filed: the text a search
reads and the conversation the message belongs to.

Search text: the message's decoded body — its text/plain parts, or the text
of its HTML where it has no plain part — case-folded, at most
:data:`SEARCH_CHARS` characters, kept once per stored message
(``message_bodies.search_text``). A search is a substring match (``LIKE``)
over it and the entry's sender and subject: the same on SQLite and
PostgreSQL, and right for Korean, where words carry particles (``환불``
must match ``환불을``) that a word index would split wrong. Extracted once at
arrival, so a search never parses messages.

Thread key: the Message-ID of the conversation's first message, which every
reply names first in References (RFC 5322 §3.6.4). A message without
References but with In-Reply-To joins the thread of the message it answers
when that one is filed (else that id starts the key); a message with
neither starts its own thread.

Nothing here raises on a malformed message (see :mod:`ums.mime`).
"""

from __future__ import annotations

import email
import html
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser

import nh3

from .mime import decode_header_value, part_text, walk

#: how much of a message's text is kept for search
SEARCH_CHARS = 100_000
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")
_LINE_END = re.compile(r"(?i)<br\s*/?>|</(p|div|li|tr|h\d|table|blockquote)\s*>")
_CELL_END = re.compile(r"(?i)</(td|th)\s*>")


def html_to_text(markup: str) -> str:
    """The text of an HTML fragment: tags dropped (script and style with their
    content), line and cell ends kept as line breaks and spaces, entities decoded."""
    spaced = _CELL_END.sub(" ", _LINE_END.sub("\n", markup))
    return html.unescape(nh3.clean(spaced, tags=set()))


def searchable_text(raw: bytes | Message) -> str:
    """The case-folded text a search of this message reads (its body, decoded);
    ``raw`` may be the message already parsed (with the ``compat32`` policy)."""
    try:
        message = raw if isinstance(raw, Message) else email.message_from_bytes(raw)
    except Exception:  # the parser is lenient; anything else is no text
        return ""
    plain, marked_up = [], []
    for part in walk(message):
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment":
            continue
        subtype = part.get_content_subtype()
        if subtype == "plain":
            plain.append(part_text(part))
        elif subtype == "html":
            marked_up.append(part_text(part))
    # an empty text/plain beside the HTML (some senders write one) is no text
    texts = [text for text in plain if text.strip()] or [html_to_text(markup) for markup in marked_up]
    return " ".join(" ".join(texts).split())[:SEARCH_CHARS].casefold()


@dataclass(frozen=True)
class ThreadHeaders:
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]


def thread_headers(raw: bytes | Message) -> ThreadHeaders:
    """Message-ID, In-Reply-To and References of a message (header block only);
    ``raw`` may be the message already parsed."""
    try:
        headers = raw if isinstance(raw, Message) else BytesHeaderParser().parsebytes(raw)
    except Exception:
        return ThreadHeaders(None, None, ())

    def ids(name: str) -> list[str]:
        return _MESSAGE_ID.findall(decode_header_value(headers.get(name)))

    own, answered = ids("Message-ID"), ids("In-Reply-To")
    return ThreadHeaders(own[0] if own else None, answered[0] if answered else None, tuple(ids("References")))


def thread_key(found: ThreadHeaders, known_threads: dict[str, str]) -> str | None:
    """The conversation key of a message; ``known_threads`` maps the Message-IDs
    of filed messages to their keys."""
    if found.references:
        return found.references[0]
    if found.in_reply_to:
        return known_threads.get(found.in_reply_to, found.in_reply_to)
    return found.message_id
