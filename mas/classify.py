"""What kind of inbound message is this? Decided before any Sieve script runs.

In order: a bounce (to the per-delivery return path ``bounce+<token>@…`` or
a DSN), an unsubscribe (to the per-delivery ``unsubscribe+<token>@…``
address), a refusal of receipt (a stop keyword in the subject or first body
lines), fax or voice mail from a gateway, else an ordinary reply.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from . import bounce as bounces
from .media import Media, recognise
from .message import InboundMessage

BOUNCE_PREFIX = "bounce+"
UNSUBSCRIBE_PREFIX = "unsubscribe+"


@dataclass(frozen=True)
class Classification:
    kind: str  # bounce, unsubscribe, refusal, fax, voice, reply
    token: str | None = None
    keyword: str | None = None
    media: Media | None = None
    bounce: bounces.Bounce | None = None

    @property
    def folder(self) -> str:
        """Where the message is filed when no rule says otherwise."""
        return {"bounce": "Bounces", "unsubscribe": "Refusals", "refusal": "Refusals"}.get(self.kind, "INBOX")


def token_of(recipient: str, prefix: str) -> str | None:
    local = recipient.rpartition("@")[0] if "@" in recipient else recipient
    if local.lower().startswith(prefix):
        token = local[len(prefix):]
        return token or None
    return None


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def parse_keywords(text: str) -> list[str]:
    return [normalise(word.strip()) for word in text.split(",") if word.strip()]


def refusal_keyword(message: InboundMessage, keywords: list[str], lines: int) -> str | None:
    """The first stop keyword found in the subject or the first body lines."""
    folded = normalise("\n".join([message.subject] + message.text_lines(lines)))
    for keyword in keywords:
        if keyword in folded:
            return keyword
    return None


def classify(message: InboundMessage, recipient: str, keywords: list[str], lines: int) -> Classification:
    token = token_of(recipient, BOUNCE_PREFIX)
    if token or bounces.looks_like_bounce(message):
        return Classification("bounce", token=token, bounce=bounces.read(message))
    token = token_of(recipient, UNSUBSCRIBE_PREFIX)
    if token:
        return Classification("unsubscribe", token=token)
    keyword = refusal_keyword(message, keywords, lines)
    if keyword:
        return Classification("refusal", keyword=keyword)
    media = recognise(message.attachments(), message.subject)
    if media:
        return Classification(media.kind, media=media)
    return Classification("reply")
