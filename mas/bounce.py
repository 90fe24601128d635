"""Reading bounces: RFC 3464 delivery status notifications first, then the
non-standard formats of real MTAs (Exim, qmail, Postfix, Exchange, Yahoo…)
through GNU Mailman's ``flufl.bounce`` detectors.

This module only reads a message; :mod:`mas.feedback` applies the result
(suppression, delivery marks, bounce score, fallback).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email.message import Message

from flufl.bounce import all_failures

from .message import InboundMessage, decode_header_value, part_text, walk

log = logging.getLogger("ums.mas.bounce")

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b([45])\d\d[ -]")
_MESSAGE_ID = re.compile(r"^message-id:\s*(<[^>\s]+>)", re.I | re.M)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status|failure|has failed)|returned mail|failure notice|"
    r"mail delivery (failed|system)|non.?delivery|delivery notification|반송|전달되지",
    re.I,
)


@dataclass(frozen=True)
class Failure:
    """One recipient the bounce reports."""

    address: str
    status: str  # enhanced status code, e.g. 5.1.1
    permanent: bool
    diagnostic: str = ""


@dataclass
class Bounce:
    failures: list[Failure] = field(default_factory=list)
    #: Message-ID of the message that bounced, found in the returned headers
    original_message_id: str = ""

    @property
    def permanent(self) -> bool:
        return any(f.permanent for f in self.failures)


def looks_like_bounce(message: InboundMessage) -> bool:
    """A DSN by content type, or a null-sender message with a bounce-like subject."""
    content_type = message.message.get_content_type()
    if content_type == "multipart/report":
        report = (message.message.get_param("report-type") or "").lower()
        return report in ("delivery-status", "")
    sender = message.envelope_from.strip("<>")
    from_mailer = re.search(r"mailer-daemon|postmaster", message.header("from"), re.I)
    return (not sender or bool(from_mailer)) and bool(_BOUNCE_SUBJECT.search(message.subject))


def read(message: InboundMessage) -> Bounce:
    """Everything a bounce says: failed recipients with status, and the original Message-ID."""
    bounce = Bounce(original_message_id=original_message_id(message))
    bounce.failures = dsn_failures(message.message) or heuristic_failures(message)
    return bounce


def dsn_failures(msg: Message) -> list[Failure]:
    """Per-recipient blocks of a ``message/delivery-status`` part (RFC 3464)."""
    failures = []
    for part in walk(msg):
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _status_blocks(part):
            recipient = block.get("final-recipient") or block.get("original-recipient") or ""
            address = recipient.split(";", 1)[-1].strip().strip("<>")
            action = (block.get("action") or "").strip().lower()
            status = _STATUS.search(block.get("status") or "")
            if not address or action not in ("failed", "delayed"):
                continue
            code = status.group() if status else ("5.0.0" if action == "failed" else "4.0.0")
            failures.append(Failure(
                address=address.lower(), status=code,
                permanent=action == "failed" and code.startswith("5"),
                diagnostic=decode_header_value(block.get("diagnostic-code") or "")[:500],
            ))
    return failures


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)][1:] or payload
    # some parsers leave the body as text: split into blank-line separated blocks
    from email.parser import HeaderParser

    text = payload if isinstance(payload, str) else ""
    blocks = [HeaderParser().parsestr(chunk) for chunk in re.split(r"\r?\n\s*\r?\n", text) if chunk.strip()]
    return blocks[1:] or blocks


def heuristic_failures(message: InboundMessage) -> list[Failure]:
    """Recipients found by the MTA-specific detectors, with a status guessed from the text."""
    try:
        temporary, permanent = all_failures(message.message)
    except Exception as exc:  # a detector tripping over a malformed bounce
        log.warning("bounce detectors failed", extra={"error": str(exc)})
        return []
    text = _body_text(message.message)
    status = _STATUS.search(text)
    smtp = _SMTP_REPLY.search(text)
    failures = []
    for raw, is_permanent in [(a, True) for a in permanent] + [(a, False) for a in temporary]:
        address = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip("<>").lower()
        if status and status.group(1) in "45":
            code = status.group()
        elif smtp:
            code = f"{smtp.group(1)}.0.0"
        else:
            code = "5.0.0" if is_permanent else "4.0.0"
        failures.append(Failure(address, code, is_permanent and code.startswith("5")))
    return failures


def _body_text(msg: Message) -> str:
    texts = [part_text(p) for p in walk(msg) if p.get_content_maintype() == "text"]
    return "\n".join(texts)[:20000]


def original_message_id(message: InboundMessage) -> str:
    """The returned message's Message-ID: from a message/rfc822 or text/rfc822-headers
    part, else the first Message-ID line quoted in the bounce's body."""
    for part in walk(message.message):
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message) and inner.get("message-id"):
                return inner["message-id"].strip()
        if content_type == "text/rfc822-headers":
            found = _MESSAGE_ID.search(part_text(part))
            if found:
                return found.group(1)
    body = message.raw.split(b"\r\n\r\n", 1)[-1].decode("utf-8", "replace")
    found = _MESSAGE_ID.search(body)
    return found.group(1) if found else ""
