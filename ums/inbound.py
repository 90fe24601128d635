"""An inbound message as MAS sees it: raw bytes parsed leniently, headers
decoded (RFC 2047, any charset Python knows, raw 8-bit guessed), MIME defects
collected instead of raised, and the parts the classifier needs.

MIME parts nest at most :data:`MAX_DEPTH` levels (Postfix's
``mime_nesting_limit``); a message nested deeper can never be read and is
refused with :class:`TooDeep` (SMTP 554 5.6.0) — the standard library's
parser and walker recurse once per level and would otherwise fail part way.
Parts are walked with :func:`walk`, which keeps its own stack instead of
recursing.
"""

from __future__ import annotations

import base64
import binascii
import email
import re
from functools import cached_property
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses

from ums.errors import UmsError
from ums.mime import decode_header_value, filename, part_text, walk

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
#: how deeply MIME parts may nest (the message itself is level 1); ``[mas] max_mime_depth``
MAX_DEPTH = 100
#: characters no stored text may hold: NUL (PostgreSQL text cannot) and lone surrogates (not UTF-8)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: ``Name <a@b>`` or ``a@b`` with nothing that needs the full address grammar (quotes, groups, comments)
_PLAIN_FROM = re.compile(r'(?:[^<>",;:()\\@\[\]]*<([^<>"\s(),;:\\\[\]@]+@[A-Za-z0-9.-]+)>|([^<>"\s(),;:\\\[\]@]+@[A-Za-z0-9.-]+))\s*')


class BadMessage(UmsError):
    """Message refused: {reason}."""

    #: the SMTP reply code and enhanced status for a message that can never be accepted as it is
    reply_code = "554 5.6.0"

    @property
    def reply(self) -> str:
        return f"{self.reply_code} {self}"


class TooDeep(BadMessage):
    """Message refused: its MIME parts nest more than {limit} levels deep."""


class IndexedMessage(Message):
    """A ``compat32`` message that answers a header look-up by name from an index
    instead of comparing every name in turn: the classifier, the search index and
    the bounce reader ask each part for its content type and a few headers dozens
    of times. The index is rebuilt whenever the header list is replaced, grows or
    shrinks, or a header is replaced in place — every change the standard library
    makes to it is one of these."""

    #: (the header list indexed, its length, lower-case name → first (name, value), values fetched)
    _index: tuple | None = None

    def get(self, name, failobj=None):
        headers = self._headers
        index = self._index
        if index is None or index[0] is not headers or index[1] != len(headers):
            first: dict[str, tuple] = {}
            for header in headers:
                first.setdefault(header[0].lower(), header)
            index = self._index = (headers, len(headers), first, {})
        name = name.lower()
        fetched = index[3].get(name)
        if fetched is None:
            header = index[2].get(name)
            if header is None:
                return failobj
            fetched = index[3][name] = self.policy.header_fetch_parse(*header)
        return fetched

    def replace_header(self, _name, _value):
        self._index = None
        super().replace_header(_name, _value)


def depth(message: Message) -> int:
    """How many levels of parts nest in ``message`` (1: a single part), without recursion."""
    deepest, stack = 1, [(message, 1)]
    while stack:
        part, level = stack.pop()
        deepest = max(deepest, level)
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend((p, level + 1) for p in payload if isinstance(p, Message))
    return deepest


def parse(raw: bytes, max_depth: int = MAX_DEPTH) -> Message:
    """``raw`` parsed leniently; raises :class:`TooDeep` when its parts nest
    deeper than ``max_depth`` (or so deep that the parser itself gives up)."""
    try:
        parsed = _single_part(raw) or email.message_from_bytes(raw, _class=IndexedMessage, policy=compat32)
    except RecursionError:
        raise TooDeep(limit=max_depth) from None
    if parsed.is_multipart() and depth(parsed) > max_depth:
        raise TooDeep(limit=max_depth)
    return parsed


def _single_part(raw: bytes) -> Message | None:
    """``raw`` read to exactly the message the standard library's parser makes of
    it, for the common message of one part with a plain header: every line
    before its first empty line a header field or a continuation, all lines of
    the header ending alike (CRLF, or LF). The parser would read the body line by
    line only to join the lines again; here it becomes the payload as it is.
    None when the message is not of that kind (it is then parsed in full)."""
    if raw[:1] in (b"\r", b"\n"):
        return None
    end = raw.find(b"\r\n\r\n")
    if end >= 0:
        eol, head, body = "\r\n", raw[:end], raw[end + 4:]
        crlf = head.count(b"\r\n")
        if head.count(b"\n") != crlf or head.count(b"\r") != crlf:
            return None
    else:
        end = raw.find(b"\n\n")
        if end < 0:
            return None
        eol, head, body = "\n", raw[:end], raw[end + 2:]
        if b"\r" in head:
            return None
    fields = _header_fields(head.decode("ascii", "surrogateescape").split(eol), eol)
    if fields is None:
        return None
    message = IndexedMessage(policy=compat32)
    message._headers = fields
    if message.get_content_maintype() in ("multipart", "message"):
        return None
    message.set_payload(body.decode("ascii", "surrogateescape"))
    return message


#: a header field's first line, as the parser knows one (``email.feedparser.headerRE`` without
#: its envelope ``From`` line and its empty field name, which the parser reads as defects)
_FIELD = re.compile(r"[\041-\071\073-\176]+:")


def _header_fields(lines: list[str], eol: str) -> list[tuple[str, str]] | None:
    """The (name, value) of each field, as the ``compat32`` policy reads them
    (``header_source_parse``); None for a line the parser would take as a defect,
    an envelope ``From`` line or the end of the header."""
    fields: list[tuple[str, list[str]]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not fields:
                return None
            fields[-1][1].append(line)
        elif line.startswith("From ") or not _FIELD.match(line):
            return None
        else:
            name, value = line.split(":", 1)
            fields.append((name, [value.lstrip(" \t")]))
    return [(name, eol.join(parts).rstrip("\r\n")) for name, parts in fields]


def storable(text: str | None) -> str | None:
    """``text`` without what no database column can store (NUL, lone surrogates)."""
    if not text or (text.isascii() and "\x00" not in text) or not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub("\ufffd", text)


class InboundMessage:
    """One received message. Satisfies :class:`ums.sieve.interpreter.MessageView`."""

    def __init__(self, raw: bytes, envelope_from: str = "", recipients: list[str] | None = None,
                 max_depth: int = MAX_DEPTH):
        """Raises :class:`TooDeep` for parts nested deeper than ``max_depth``."""
        self.raw = raw
        self.size = len(raw)
        self.envelope_from = envelope_from or ""
        self.recipients = recipients or []
        self.message: Message = parse(raw, max_depth)
        self._headers: dict[str, list[str]] = {}

    def header_values(self, name: str) -> list[str]:
        key = name.lower()
        values = self._headers.get(key)
        if values is None:
            values = [storable(decode_header_value(v)) for v in self.message.get_all(key, [])]
            self._headers[key] = values
        return values

    def folded_header_values(self, name: str) -> list[str]:
        """:meth:`header_values` with ASCII letters lower-cased (for ``i;ascii-casemap``)."""
        key = "\0" + name.lower()
        values = self._headers.get(key)
        if values is None:
            values = [value.translate(_ASCII_LOWER) for value in self.header_values(name)]
            self._headers[key] = values
        return values

    def addresses(self, name: str) -> list[str]:
        """The addresses in every header of this name (``Name <a@b>`` → ``a@b``)."""
        key = "@" + name.lower()
        values = self._headers.get(key)
        if values is None:
            found = self.header_values(name)
            values = [address for _, address in getaddresses(found) if address] if found else []
            self._headers[key] = values
        return values

    def header(self, name: str) -> str:
        values = self.header_values(name)
        return values[0] if values else ""

    @property
    def subject(self) -> str:
        return self.header("subject")

    @property
    def message_id(self) -> str:
        return self.header("message-id")[:255]

    @cached_property
    def sender(self) -> str:
        """The author's address (From), else the envelope sender."""
        values = self.header_values("from")
        plain = _PLAIN_FROM.fullmatch(values[0]) if len(values) == 1 else None
        if plain:
            return (plain.group(1) or plain.group(2)).lower()
        found = [address for _, address in getaddresses(values) if "@" in address]
        return (found[0] if found else self.envelope_from).lower()

    def defects(self) -> list[str]:
        """MIME problems found while parsing, as readable lines."""
        found = []
        if not self.message.keys():
            found.append("no header fields")
        for required in ("from", "date"):
            if self.message.keys() and not self.message.get(required):
                found.append(f"missing {required.capitalize()} header")
        head = self.raw[:_header_end(self.raw)]
        if not head.isascii():
            try:
                head.decode("utf-8")
            except UnicodeDecodeError:
                found.append("8-bit characters in headers that are not UTF-8")
        for part in walk(self.message):
            for defect in getattr(part, "defects", []):
                found.append(f"{type(defect).__name__}: {defect.__doc__.strip().splitlines()[0] if defect.__doc__ else ''}".rstrip(": "))
            if not part.is_multipart():
                found.extend(_payload_defects(part))
        return list(dict.fromkeys(found))

    def text_lines(self, limit: int) -> list[str]:
        """The first ``limit`` non-empty, non-quoted lines of the first text part
        (stripped only as far as they go, however long the message)."""
        for part in walk(self.message):
            if part.get_content_maintype() == "text" and not filename(part):
                text = part_text(part)
                if part.get_content_subtype() == "html":
                    text = re.sub(r"<[^>]+>", " ", text)
                found = []
                for line in text.splitlines():
                    line = line.strip()
                    if line and not line.startswith(">"):
                        found.append(line)
                        if len(found) >= limit:
                            break
                return found
        return []

    def attachments(self) -> list[tuple[str, str, bytes]]:
        """(content type, file name, decoded bytes) of every non-text leaf part."""
        found = []
        for part in walk(self.message):
            if part.is_multipart() or part.get_content_maintype() in ("text", "message"):
                continue
            try:
                data = part.get_payload(decode=True) or b""
            except Exception:
                data = b""
            found.append((part.get_content_type(), part.get_filename() or "", data))
        return found


def _header_end(raw: bytes) -> int:
    """Where the header of ``raw`` ends: its first empty line (LF or CRLF endings), else its end."""
    ends = [found for found in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if found >= 0]
    if not ends:
        return len(raw)
    end = min(ends)
    return end - 1 if raw[end - 1:end] == b"\r" else end


def _payload_defects(part: Message) -> list[str]:
    encoding = (part.get("content-transfer-encoding") or "").strip().lower()
    if encoding != "base64":
        return []
    payload = part.get_payload()
    if not isinstance(payload, str):
        return []
    cleaned = re.sub(r"\s+", "", payload)
    try:
        base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return [f"bad base64 in a {part.get_content_type()} part"]
    return []
