"""Fixed-width telegrams over TCP: layouts, the codec and the Twisted protocol.

Wire format (both directions): four ASCII digits giving the body length, then
the body. A request body's layout is chosen by its first four bytes (the
transaction code) from the XML files in ``config/telegrams/``.

Every request frame gets exactly one reply, in order::

    reply body = kind (4: "ACK " or "NACK") + telegram id (20) + result code (4)
                 + detail (80, ASCII: the event id for an ACK, the reason for a NACK)

Result codes: 0000 stored, 0001 duplicate (already stored), 1001 wrong length,
1002 unknown transaction code, 1003 bad field value (also a control
character in a field), 1004 undecodable text, 1005 required field empty,
1006 conflict (the telegram id was already used for a different telegram;
nothing stored), 2001 busy (EPS paused; send again later),
2002 could not store (send again later), 9001 unreadable frame header and
9002 frame too large — these last two close the connection, since framing is
lost; every other NACK leaves the connection serving its next frames.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from twisted.internet.protocol import Factory, Protocol

from ums import xml
from ums.config import SHIPPED_CONFIG_DIR
from ums.errors import UmsError

from .events import IncomingEvent

log = logging.getLogger("ums.eps.telegrams")

LAYOUT_DIR = SHIPPED_CONFIG_DIR / "telegrams"
LAYOUT_XSD = LAYOUT_DIR / "layout.xsd"
HEADER = 4
ID_WIDTH = 20
DETAIL_WIDTH = 80

OK, DUPLICATE = "0000", "0001"
WRONG_LENGTH, UNKNOWN_CODE, BAD_VALUE, BAD_ENCODING, MISSING = "1001", "1002", "1003", "1004", "1005"
CONFLICT = "1006"
BUSY, NOT_STORED = "2001", "2002"
BAD_HEADER, TOO_LARGE = "9001", "9002"


class TelegramError(UmsError):
    """Telegram refused ({code}): {reason}."""


class LayoutError(UmsError):
    """Bad telegram layout {path}: {reason}."""


@dataclass
class Field:
    name: str
    offset: int
    length: int
    type: str = "string"
    role: str | None = None
    required: bool = False
    mapping: dict[str, str] = field(default_factory=dict)


@dataclass
class Layout:
    code: str
    system: str
    encoding: str
    length: int
    fields: list[Field]
    event_type: str | None = None

    def field_for(self, role: str) -> Field | None:
        return next((f for f in self.fields if f.role == role), None)


def load_layout(path: Path) -> Layout:
    try:
        root = xml.parse_valid(path.read_bytes(), LAYOUT_XSD)
    except (OSError, xml.XmlError) as exc:
        raise LayoutError(path=str(path), reason=str(exc)) from None
    fields = [
        Field(
            name=f.get("name"), offset=int(f.get("offset")), length=int(f.get("length")),
            type=f.get("type", "string"), role=f.get("role"),
            required=f.get("required", "false") in ("true", "1"),
            mapping={m.get("from"): m.get("to") for m in f.iterfind("map")},
        )
        for f in root.iterfind("field")
    ]
    layout = Layout(root.get("code"), root.get("system"), root.get("encoding", "EUC-KR"),
                    int(root.get("length")), fields, root.get("event-type"))
    _check_layout(layout, path)
    return layout


def _check_layout(layout: Layout, path: Path) -> None:
    for item in layout.fields:
        if item.offset + item.length > layout.length:
            raise LayoutError(path=str(path), reason=f"field {item.name} ends past the length {layout.length}")
    for role in ("key", "customer"):
        if layout.field_for(role) is None:
            raise LayoutError(path=str(path), reason=f"no field with role {role}")
    if layout.event_type is None and layout.field_for("event-type") is None:
        raise LayoutError(path=str(path), reason="no event-type attribute and no event-type field")


def load_layouts(directory: Path | str | None = None) -> dict[str, Layout]:
    """Every ``*.xml`` layout in ``directory`` (the shipped ones by default), by code."""
    folder = Path(directory) if directory else LAYOUT_DIR
    layouts = {}
    for path in sorted(folder.glob("*.xml")):
        layout = load_layout(path)
        if layout.code in layouts:
            raise LayoutError(path=str(path), reason=f"transaction code {layout.code} is defined twice")
        layouts[layout.code] = layout
    return layouts


# --- codec ------------------------------------------------------------------------

_DIGITS = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"^\d{8}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def decode(body: bytes, layouts: dict[str, Layout]) -> tuple[Layout, IncomingEvent]:
    """Read one request body; raises :class:`TelegramError` with the result code."""
    code = body[:4].decode("ascii", "replace")
    layout = layouts.get(code)
    if layout is None:
        raise TelegramError(code=UNKNOWN_CODE, reason=f"unknown transaction code {code!r}")
    if len(body) != layout.length:
        raise TelegramError(code=WRONG_LENGTH,
                            reason=f"{code} is {layout.length} bytes, got {len(body)}")
    values = {item.name: _value(body, item, layout.encoding) for item in layout.fields}
    event_type = layout.event_type
    type_field = layout.field_for("event-type")
    if type_field is not None:
        event_type = type_field.mapping.get(values[type_field.name], None) if type_field.mapping \
            else values[type_field.name]
        if not event_type:
            raise TelegramError(code=BAD_VALUE, reason=f"{type_field.name}: unknown value {values[type_field.name]!r}")
    data = {item.name: values[item.name] for item in layout.fields if item.role is None}
    return layout, IncomingEvent(
        source_system=layout.system,
        event_type=event_type,
        customer_id=values[layout.field_for("customer").name],
        data=data,
        idempotency_key=f"{layout.code}:{values[layout.field_for('key').name]}",
    )


def _value(body: bytes, item: Field, encoding: str):
    raw = body[item.offset:item.offset + item.length]
    try:
        text = raw.decode(encoding).strip()
    except UnicodeDecodeError:
        raise TelegramError(code=BAD_ENCODING, reason=f"{item.name} is not valid {encoding}") from None
    if _CONTROL.search(text):  # NUL and friends cannot be stored as text
        raise TelegramError(code=BAD_VALUE, reason=f"{item.name} holds a control character")
    if not text:
        if item.required:
            raise TelegramError(code=MISSING, reason=f"{item.name} is empty")
        return None if item.type == "number" else ""
    if item.type == "number":
        if not _DIGITS.match(text):
            raise TelegramError(code=BAD_VALUE, reason=f"{item.name} is not a number")
        return int(text)
    if item.type == "date":
        if not _DATE.match(text) or not _valid_date(text):
            raise TelegramError(code=BAD_VALUE, reason=f"{item.name} is not a date (YYYYMMDD)")
    return text


def _valid_date(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return True


def frame(body: bytes) -> bytes:
    return b"%04d" % len(body) + body


def encode_fields(layout: Layout, values: dict) -> bytes:
    """Build a request body from field values (used by clients, tests and benchmarks)."""
    body = bytearray(b" " * layout.length)
    for item in layout.fields:
        value = values.get(item.name, layout.code if item.role == "code" else "")
        if item.type == "number" and value != "":
            raw = str(value).rjust(item.length, "0").encode("ascii")
        else:
            raw = str(value).encode(layout.encoding).ljust(item.length, b" ")
        if len(raw) > item.length:
            raise ValueError(f"{item.name} does not fit in {item.length} bytes")
        body[item.offset:item.offset + item.length] = raw
    return bytes(body)


def reply(kind: str, telegram_id: str, code: str, detail: str) -> bytes:
    body = (
        kind.ljust(4).encode("ascii")
        + telegram_id.encode("ascii", "replace")[:ID_WIDTH].ljust(ID_WIDTH)
        + code.encode("ascii")
        + detail.encode("ascii", "replace")[:DETAIL_WIDTH].ljust(DETAIL_WIDTH)
    )
    return frame(body)


def parse_reply(body: bytes) -> dict:
    return {
        "kind": body[:4].decode("ascii").strip(),
        "telegram_id": body[4:24].decode("ascii").strip(),
        "code": body[24:28].decode("ascii"),
        "detail": body[28:].decode("ascii").strip(),
    }


def _telegram_id(body: bytes) -> str:
    return body[4:24].decode("ascii", "replace").strip()


# --- the protocol -------------------------------------------------------------------------

class TelegramProtocol(Protocol):
    """One connection: frames in, replies out in the same order."""

    def connectionMade(self):
        self.buffer = b""
        self.replies: deque[asyncio.Future] = deque()
        self.writer: asyncio.Task | None = None
        self.closing = False

    def dataReceived(self, data: bytes):
        if self.closing:
            return
        self.buffer += data
        while len(self.buffer) >= HEADER and not self.closing:
            header = self.buffer[:HEADER]
            if not header.isdigit():
                return self._give_up(BAD_HEADER, "the frame header is not four digits")
            length = int(header)
            if length > self.factory.max_frame:
                return self._give_up(TOO_LARGE, f"frames may be at most {self.factory.max_frame} bytes")
            if len(self.buffer) < HEADER + length:
                return
            body, self.buffer = self.buffer[HEADER:HEADER + length], self.buffer[HEADER + length:]
            self._queue_reply(asyncio.ensure_future(self.factory.handle(body)))

    def _give_up(self, code: str, reason: str) -> None:
        self.closing = True
        done = asyncio.get_running_loop().create_future()
        done.set_result(reply("NACK", "", code, reason))
        self._queue_reply(done, close_after=True)

    def _queue_reply(self, future: asyncio.Future, close_after: bool = False) -> None:
        self.replies.append((future, close_after))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.ensure_future(self._write_replies())

    async def _write_replies(self) -> None:
        while self.replies:
            future, close_after = self.replies[0]
            data = await future
            self.replies.popleft()
            if self.transport is not None:
                self.transport.write(data)
                if close_after:
                    self.transport.loseConnection()

    def connectionLost(self, reason=None):
        self.closing = True


class TelegramFactory(Factory):
    protocol = TelegramProtocol
    noisy = False

    def __init__(self, service, layouts: dict[str, Layout], max_frame: int = 8192):
        self.service = service
        self.layouts = layouts
        self.max_frame = max_frame

    async def handle(self, body: bytes) -> bytes:
        """Reply to one request body (never raises)."""
        telegram_id = _telegram_id(body)
        if self.service.paused:
            return reply("NACK", telegram_id, BUSY, "EPS is paused; send again later")
        try:
            _, event = decode(body, self.layouts)
        except TelegramError as exc:
            return reply("NACK", telegram_id, exc.fields["code"], exc.fields["reason"])
        try:
            accepted = await self.service.ingestor.submit(event)
        except Exception as exc:
            log.error("telegram not stored", extra={"telegram_id": telegram_id, "error": str(exc)})
            return reply("NACK", telegram_id, NOT_STORED, "could not store; send again later")
        if accepted.conflict:
            return reply("NACK", telegram_id, CONFLICT,
                         f"telegram id already used for a different telegram (event {accepted.event_id})")
        return reply("ACK", telegram_id, DUPLICATE if accepted.duplicate else OK, str(accepted.event_id))
