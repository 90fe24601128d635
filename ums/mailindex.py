"""What the mailbox indexes of a message when it is filed: the text a search
reads and the conversation the message belongs to.

Search text: the message's sender and subject and its decoded body — its
text/plain parts, or the text of its HTML where it has no plain part — case-folded, at most
:data:`SEARCH_CHARS` characters, kept once per stored message
(``message_bodies.search_text``). A message that carries a document (a fax
TIFF, a PDF: :func:`has_documents`) has that document's text added later, when
:mod:`ums.ocr` has read it — never while the sender waits for its 250. A
search matches substrings of it (indexed by trigrams: FTS5 on SQLite, pg_trgm on PostgreSQL), right for
Korean, where words carry particles (``환불`` must match ``환불을``) that a
word index would split wrong. Extracted once at arrival, so a search never
parses messages. :func:`search_words` and :func:`highlight` are how a query
is read and how its matches are shown.

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

from .mime import decode_header_value, filename, part_text, walk

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


#: attachments whose text :mod:`ums.ocr` reads after arrival (a fax's pages, a PDF's)
DOCUMENT_TYPES = frozenset({"application/pdf", "image/tiff", "image/tif", "image/x-tiff"})
DOCUMENT_SUFFIXES = (".pdf", ".tif", ".tiff")


def is_document(content_type: str, filename: str | None) -> bool:
    """A part whose text is read later: a PDF or a TIFF (by type or by name)."""
    return content_type in DOCUMENT_TYPES or (filename or "").lower().endswith(DOCUMENT_SUFFIXES)


def _parsed(raw: bytes):
    try:
        return email.message_from_bytes(raw)
    except Exception:  # the parser is lenient; anything else is no message
        return None


def has_documents(raw: bytes) -> bool:
    """Whether the message carries a document whose text is to be read (:func:`is_document`)."""
    return extract(raw)[1]


def normalised(text: str) -> str:
    """Text as search reads it: case-folded, runs of white space (and NULs, which no
    PostgreSQL text holds) made one space."""
    return " ".join(text.replace("\x00", " ").split()).casefold()


def searchable_text(raw: bytes) -> str:
    """The case-folded text a search of this message reads (its body, decoded)."""
    return extract(raw)[0]


def extract(raw: bytes | Message) -> tuple[str, bool]:
    """:func:`searchable_text` and :func:`has_documents` of a message, parsed once;
    ``raw`` may be the message already parsed (with the ``compat32`` policy)."""
    message = raw if isinstance(raw, Message) else _parsed(raw)
    if message is None:
        return "", False
    plain, marked_up, documents = [], [], False
    for part in walk(message):
        if part.is_multipart():
            continue
        documents = documents or is_document(part.get_content_type(), filename(part))
        if part.get_content_maintype() != "text" or part.get_content_disposition() == "attachment":
            continue
        subtype = part.get_content_subtype()
        if subtype == "plain":
            plain.append(part_text(part))
        elif subtype == "html":
            marked_up.append(part_text(part))
    # an empty text/plain beside the HTML (some senders write one) is no text
    texts = [text for text in plain if text.strip()] or [html_to_text(markup) for markup in marked_up]
    headers = [decode_header_value(message.get(name)) for name in ("From", "Subject")]
    return normalised(" ".join([*headers, *texts]))[:SEARCH_CHARS], documents


def with_documents(body_text: str, pages: list[str]) -> str:
    """The search text of a message whose documents' ``pages`` have been read."""
    return normalised(" ".join([body_text, *pages]))[:SEARCH_CHARS]


def search_words(query: str | None) -> list[str]:
    """The words of a search (each must match), case-folded, each once, in order."""
    return list(dict.fromkeys(normalised(query or "").split()))


#: characters of context a snippet shows before the first match
SNIPPET_BEFORE = 40
SNIPPET_CHARS = 160


def highlight(text: str, words: list[str]) -> str:
    """HTML of ``text`` (escaped) with every match of ``words`` in ``<mark>``."""
    if not words or not text:
        return html.escape(text or "")
    pattern = re.compile("|".join(re.escape(word) for word in sorted(words, key=len, reverse=True)),
                         re.IGNORECASE)
    pieces, last = [], 0
    for found in pattern.finditer(text):
        pieces += [html.escape(text[last:found.start()]), f"<mark>{html.escape(found.group())}</mark>"]
        last = found.end()
    pieces.append(html.escape(text[last:]))
    return "".join(pieces)


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
