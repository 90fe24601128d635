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
        parsed = email.message_from_bytes(raw, policy=compat32)
    except RecursionError:
        raise TooDeep(limit=max_depth) from None
    if parsed.is_multipart() and depth(parsed) > max_depth:
        raise TooDeep(limit=max_depth)
    return parsed


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
        head = re.split(rb"\r?\n\r?\n", self.raw, maxsplit=1)[0]
        if re.search(rb"[\x80-\xff]", head):
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
