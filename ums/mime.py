"""Reading MIME leniently, shared by MAS and the command line: parts walked
without recursion (a message may nest parts far deeper than Python's stack),
header values RFC 2047-decoded in any charset Python knows (raw 8-bit bytes
guessed), text parts decoded with their declared charset or the fallbacks.
Nothing here raises on a malformed message."""

from __future__ import annotations

import re
from functools import lru_cache
from email.header import Header, decode_header
from email.message import Message

#: tried in order for raw 8-bit header bytes and for text parts with a bad or missing charset
FALLBACK_CHARSETS = ("utf-8", "cp949", "latin-1")
_SMUGGLED_BYTE = re.compile("[\udc80-\udcff]")
_ENCODED_WORD_GAP = re.compile(r"(\?=)\s+(=\?)")
_FOLD = re.compile(r"\r?\n[ \t]*")
#: ``type/subtype; charset=name`` and nothing else: read without the standard library's
#: full parameter parser (RFC 2231 continuations, comments and the rest still go through it)
_PLAIN_CHARSET = re.compile(r'\s*[\w.+-]+/[\w.+-]+\s*;\s*charset\s*=\s*("?)([\w.:+-]+)\1\s*;?\s*', re.I | re.A)


def walk(message: Message):
    """Every part of ``message``, itself first, in the order of :meth:`Message.walk`
    (depth first), with an explicit stack instead of recursion."""
    stack = [message]
    while stack:
        part = stack.pop()
        yield part
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode with the declared charset when Python knows it, else the fallbacks."""
    for candidate in ([charset] if charset else []) + list(FALLBACK_CHARSETS):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def decode_header_value(value) -> str:
    """RFC 2047-decode a header value; never raises."""
    if value is None:
        return ""
    if isinstance(value, Header):  # raw 8-bit header: the parser wraps it as unknown-8bit
        value = value.encode()
    return _remembered(value) if len(value) <= REMEMBERED_LENGTH else _decoded(value)


#: header values up to this long are decoded once while they are met again (the classifier,
#: the bounce reader and the search index each read one message's From and Subject)
REMEMBERED_LENGTH = 998


def _decoded(value: str) -> str:
    if not value.isascii() and _SMUGGLED_BYTE.search(value):
        # raw 8-bit bytes smuggled as surrogates by the parser
        value = decode_bytes(value.encode("ascii", "surrogateescape"))
    if "=?" not in value:
        return _unfold(value)
    try:
        chunks = decode_header(_ENCODED_WORD_GAP.sub(r"\1\2", value))
    except Exception:
        return _unfold(value)
    text = []
    for data, charset in chunks:
        text.append(decode_bytes(data, charset) if isinstance(data, bytes) else data)
    return _unfold("".join(text))


_remembered = lru_cache(maxsize=1024)(_decoded)


def _unfold(value: str) -> str:
    return (_FOLD.sub(" ", value) if "\n" in value else value).strip()


def content_charset(part: Message) -> str | None:
    """``part.get_content_charset()``, with the common plain form read directly."""
    header = part.get("content-type")
    if isinstance(header, str):
        plain = _PLAIN_CHARSET.fullmatch(header)
        if plain:
            return plain.group(2).lower()
    return part.get_content_charset()


def filename(part: Message) -> str | None:
    """``part.get_filename()``, which parses the header parameters: only for a part
    whose headers say "name" somewhere (most parts have none)."""
    headers = f"{part.get('content-disposition', '')}{part.get('content-type', '')}"
    return part.get_filename() if "name" in headers.lower() else None


#: where :func:`part_text` keeps a part's decoded text on the part (the classifier, the
#: search index and the bounce reader all read the same parts of one message)
_TEXT = "_ums_text"


def part_text(part: Message) -> str:
    """A leaf part's payload decoded to text (transfer encoding, then charset);
    decoded once per part."""
    text = getattr(part, _TEXT, None)
    if text is None:
        try:
            data = part.get_payload(decode=True) or b""
        except Exception:
            data = b""
        text = decode_bytes(data, content_charset(part))
        setattr(part, _TEXT, text)
    return text
