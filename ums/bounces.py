"""Reading a bounce: which recipients failed, how (permanent, temporary, or a
block of the sender) and with which status — from the message alone, with no
state, so MAS (:mod:`mas.feedback` applies the result) and ``ums bounce
parse`` read every bounce alike.

RFC 3464 delivery status notifications are read first; other formats (Exim,
qmail, Exchange, Yahoo…) through GNU Mailman's ``flufl.bounce`` detectors.

- The recipient: an RFC 822 ``Original-Recipient`` (the address UMS sent to)
  before ``Final-Recipient`` (which a forwarding MTA may have rewritten);
  X.400 strings and anything that is not an address are ignored.
- The kind: ``Action: failed`` is permanent whatever class its ``Status``
  has (the MTA gave up: ``4.4.7`` after days of retrying is final), and
  ``delayed`` temporary; in other formats a failure notice is permanent and
  a delay warning temporary.
- The status: the ``Status`` field, made precise by the SMTP reply of
  ``Diagnostic-Code``; in other formats an SMTP reply in the notice (a reply
  code at the start of a line, after ``said:``, or qmail's ``(#5.1.1)``) —
  never any other dotted number (a phone number ``480-624-2500`` or a
  version ``4.3.17`` is no status).
- A block of the sender rather than a bad address — 5.7.x (or 4.7.x) with
  spam, block list, reputation or policy wording, and the sender
  authentication codes (5.7.23–5.7.28: SPF, DKIM, DMARC, reverse DNS) — is
  "ignored": it suppresses nobody, as it says nothing about the recipient.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser

from flufl.bounce import all_failures

from .mime import decode_header_value, part_text, walk

log = logging.getLogger("ums.bounces")

PERMANENT, TEMPORARY, IGNORED = "permanent", "temporary", "ignored"
KINDS = (PERMANENT, TEMPORARY, IGNORED)

_ENHANCED = r"[245]\.\d{1,3}\.\d{1,3}"
_ENHANCED_AT_START = re.compile(rf"^\s*({_ENHANCED})(?![\d.])")
#: an SMTP reply: a code (4xx or 5xx) opening a line, after ``said:`` or a
#: diagnostic type (``smtp;``), then its enhanced status if it has one
_REPLY = re.compile(
    rf"(?:^[ \t>]*|said:\s*|\bsmtp;\s*)([45][0-5]\d)(?:[ -]|:\s)\s*(?:#?({_ENHANCED})(?![\d.]))?",
    re.I | re.M,
)
#: the code that opens each continuation line of a multi-line reply (``550-5.7.1 …``)
_CONTINUATION = re.compile(rf"\s+[45][0-5]\d[ -](?:{_ENHANCED}\s+)?")
_QMAIL_STATUS = re.compile(rf"\(#({_ENHANCED})\)")
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]+@[A-Za-z0-9][A-Za-z0-9.-]*")
_MESSAGE_ID = re.compile(r"^message-id:\s*(<[^>\s]+>)", re.I | re.M)
#: where a non-MIME bounce starts quoting the returned message
_RETURNED = re.compile(
    r"^\s*-+ ?(?:below this line is a copy|original message|the original message|"
    r"header of the source|returned mail|original message follows|message headers follow)",
    re.I | re.M,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status|failure|has failed|report|notification)|returned mail|failure notice|"
    r"mail delivery|non.?delivery|delivery problem|mail (system )?error|failed mail|mail not delivered|"
    r"could not be delivered|not (yet )?been delivered|mail failed|failure|delayed|rejected|반송|전달되지",
    re.I,
)
_FAILED_ACTIONS = {"failed", "failure", "error"}
_DELAYED_ACTIONS = {"delayed"}
#: sender authentication failures (RFC 7372: SPF, DKIM, DMARC, reverse DNS)
_SENDER_AUTH_STATUSES = {"7.23", "7.24", "7.25", "7.26", "7.27", "7.28"}
_SENDER_BLOCK_WORDS = re.compile(
    r"spam|unsolicited|bulk mail|block(?:ed|list|ing)?\b|black ?list|deny ?list|reputation|policy|"
    r"dmarc|\bspf\b|dkim|banned|\brbl\b|spamhaus|listed (?:at|in|on|by)",
    re.I,
)


@dataclass(frozen=True)
class Failure:
    """One recipient a bounce reports."""

    address: str
    status: str  # enhanced status code, e.g. 5.1.1
    kind: str  # permanent, temporary or ignored (a block of the sender)
    reason: str = ""

    @property
    def permanent(self) -> bool:
        return self.kind == PERMANENT

    def as_dict(self) -> dict:
        return {"address": self.address, "status": self.status, "reason": self.reason}


@dataclass
class Bounce:
    failures: list[Failure] = field(default_factory=list)
    #: Message-ID of the message that bounced, found in the returned headers
    original_message_id: str = ""

    def by_kind(self) -> dict[str, list[dict]]:
        """``{"permanent": [...], "temporary": [...], "ignored": [...]}``."""
        return {kind: [f.as_dict() for f in self.failures if f.kind == kind] for kind in KINDS}


def is_bounce(msg: Message, envelope_from: str | None) -> bool:
    """A delivery status report by content type, or a message from a null sender
    or a mailer daemon with a bounce-like subject (``envelope_from`` None: not known)."""
    if msg.get_content_type() == "multipart/report":
        return (msg.get_param("report-type") or "").lower() in ("delivery-status", "")
    null_sender = envelope_from is not None and not envelope_from.strip("<> ")
    mailer = re.search(r"mailer-daemon|postmaster|mail delivery", decode_header_value(msg.get("from")), re.I)
    return (null_sender or bool(mailer)) and bool(_BOUNCE_SUBJECT.search(decode_header_value(msg.get("subject"))))


def read(msg: Message) -> Bounce:
    """Everything a bounce says: failed recipients with kind and status, and the original Message-ID."""
    failures = dsn_failures(msg) or heuristic_failures(msg)
    unique = list({f.address: f for f in reversed(failures)}.values())[::-1]  # the first report of each wins
    return Bounce(failures=unique, original_message_id=original_message_id(msg))


def sender_blocked(status: str, reason: str) -> bool:
    """Whether a failure is a policy or reputation block of the sending server."""
    _, _, detail = status.partition(".")
    if not detail.startswith("7."):
        return False
    return detail in _SENDER_AUTH_STATUSES or bool(_SENDER_BLOCK_WORDS.search(reason))


def _kind(kind: str, status: str, reason: str) -> str:
    return IGNORED if sender_blocked(status, reason) else kind


def dsn_failures(msg: Message) -> list[Failure]:
    """The per-recipient blocks of every ``message/delivery-status`` part (RFC 3464)."""
    failures = []
    for part in walk(msg):
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _status_blocks(part):
            failure = _block_failure(block, lambda: notice_text(msg))
            if failure is not None:
                failures.append(failure)
    return failures


def _block_failure(block: Message, notice) -> Failure | None:
    """One recipient's failure; ``notice()`` gives the report's text, read for the
    wording of a 5.7.x block whose diagnostic says no more than its code."""
    address = recipient_of(block)
    if not address:
        return None
    reason = decode_header_value(block.get("diagnostic-code") or "")
    status = _dsn_status(block.get("status") or "", reason)
    action = (block.get("action") or "").strip().lower().split(" ")[0]
    if action in _FAILED_ACTIONS:
        kind = PERMANENT
    elif action in _DELAYED_ACTIONS:
        kind = TEMPORARY
    elif not action and status:
        kind = PERMANENT if status.startswith("5") else TEMPORARY
    else:
        return None  # delivered, relayed, expanded: no failure
    status = status or ("5.0.0" if kind == PERMANENT else "4.0.0")
    reason = _without_type(reason) or (block.get("status") or "").strip()
    kind = _kind(kind, status, reason)
    if status[1:3] == ".7" and kind != IGNORED:
        kind = _kind(kind, status, notice())
    return Failure(address, status, kind, reason[:500])


def recipient_of(block: Message) -> str:
    """An RFC 822 Original-Recipient, else the Final-Recipient; never an X.400 string."""
    for name in ("original-recipient", "final-recipient"):
        address = _rfc822_address(decode_header_value(block.get(name) or ""))
        if address:
            return address
    return ""


def _rfc822_address(value: str) -> str:
    kind, sep, address = value.partition(";")
    if not sep:
        kind, address = "", value
    if kind and kind.strip().lower() != "rfc822":
        return ""
    address = address.strip().strip("<>").strip()
    return address.lower() if _ADDRESS.fullmatch(address) else ""


def _without_type(diagnostic: str) -> str:
    """``smtp; 550 5.1.1 …`` → ``550 5.1.1 …``."""
    kind, sep, text = diagnostic.partition(";")
    text = text.strip() if sep and " " not in kind.strip() else diagnostic.strip()
    return _CONTINUATION.sub(" ", text)


def _dsn_status(field: str, diagnostic: str) -> str:
    """The Status field's code; a generic one (5.0.0) made precise by the diagnostic's SMTP reply."""
    found = _ENHANCED_AT_START.match(field)
    status = found.group(1) if found else reply_status(field)
    detailed = reply_status(diagnostic)
    if detailed and (not status or (status.endswith(".0.0") and detailed[0] == status[0])):
        return detailed
    return status


def reply_status(text: str) -> str:
    """The status of the first SMTP reply in ``text``: its enhanced code when it
    has one of its own class, else the class (``550`` → ``5.0.0``); "" for none."""
    first = ""
    for found in _REPLY.finditer(text):
        code, enhanced = found.groups()
        if enhanced and enhanced[0] == code[0]:
            return enhanced
        first = first or f"{code[0]}.0.0"
    qmail = _QMAIL_STATUS.search(text)
    return qmail.group(1) if qmail and not first else first


def _status_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [block for block in payload if isinstance(block, Message)]
    else:  # some parsers leave the body as text: blank-line separated blocks
        text = payload if isinstance(payload, str) else ""
        blocks = [HeaderParser().parsestr(chunk.strip()) for chunk in re.split(r"\r?\n\s*\r?\n", text)
                  if chunk.strip()]
    return [block for block in blocks if block.get("final-recipient") or block.get("original-recipient")]


def heuristic_failures(msg: Message) -> list[Failure]:
    """Recipients found by the MTA-specific detectors: a delay warning's are
    temporary, a failure notice's permanent; the status from an SMTP reply near
    the address in the notice."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:  # a detector tripping over a malformed bounce
        log.warning("bounce detectors failed", extra={"error": str(exc)[:300]})
        return []
    notice = notice_text(msg)
    failures = []
    for raw, kind in [(a, PERMANENT) for a in sorted(permanent)] + [(a, TEMPORARY) for a in sorted(temporary)]:
        address = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)).strip().strip("<>")
        if not _ADDRESS.fullmatch(address):
            continue  # an X.400 string, a bare user name…
        address = address.lower()
        reason = _reason_near(notice, address)
        status = reply_status(reason)
        if not status:  # the notice's reply, whose wording is then the notice's too
            status = reply_status(notice) or ("5.0.0" if kind == PERMANENT else "4.0.0")
            kind = _kind(kind, status, notice)
        failures.append(Failure(address, status, _kind(kind, status, reason), reason[:500]))
    return failures


def notice_text(msg: Message) -> str:
    """The human-readable text of a bounce, without the returned message."""
    texts = []
    for part in walk(msg):
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            break
        if part.get_content_maintype() == "text":
            text = part_text(part)
            if part.get_content_subtype() == "html":
                text = re.sub(r"<[^>]+>", " ", text).replace("&nbsp;", " ")
            texts.append(text)
    text = "\n".join(texts)[:50000]
    returned = _RETURNED.search(text)
    return text[:returned.start()] if returned else text


def _reason_near(notice: str, address: str) -> str:
    """The lines after the address's first mention: where notices give the reason."""
    at = notice.lower().find(address)
    if at < 0:
        return ""
    lines = [line.strip() for line in notice[at + len(address):at + 800].splitlines()]
    return " ".join(line for line in lines[:6] if line).lstrip(">:)]\"';, ").strip()


def original_message_id(msg: Message) -> str:
    """The returned message's Message-ID: from a message/rfc822 or text/rfc822-headers
    part, else the first Message-ID line quoted in the bounce's text."""
    for part in walk(msg):
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
    for part in walk(msg):
        if part.get_content_maintype() == "text":
            found = _MESSAGE_ID.search(part_text(part))
            if found:
                return found.group(1)
    return ""
