"""What kind of inbound message is this? Decided before any Sieve script runs.

In order: a bounce (to the per-delivery return path ``bounce+<token>@…`` or
a DSN, read by :mod:`ums.bounces`) — also when it carries ``Auto-Submitted``,
as every DSN should (RFC 3834), so a bounce is never taken for an
auto-reply — an unsubscribe (to the per-delivery ``unsubscribe+<token>@…``
address), a refusal of receipt (a stop keyword in the subject or first body
lines), fax or voice mail from a gateway, else an ordinary reply.

Stop keywords (:class:`Keywords`) match whole words, compared after NFKC
normalisation and case folding: "unsubscribe me" is a refusal, "I never
unsubscribed" is not. A keyword edge that is Hangul may run on into more
Hangul, as Korean writes particles and compounds without a space
(``수신거부합니다``, ``광고수신거부``). Bare keywords (``STOP``) count only
as the whole subject (after ``Re:``/``회신:`` prefixes) or a whole body line.
Classifying only names the kind: whether a refusal acts at once is
:mod:`mas.feedback`'s to decide.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ums import bounces

from .media import Media, recognise
from ums.inbound import InboundMessage

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


_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
#: what a bare keyword may be wrapped in: reply and forward prefixes, punctuation, spaces
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|fw|fwd|aw|sv|회신|답장|전달)\s*(?:\[\d+\])?\s*:)+", re.I)
_WRAPPING = " \t\"'.,!?;:()[]<>*-_~。!?"


def _word_pattern(keyword: str) -> str:
    """``keyword`` as a whole word: any run of spaces or hyphens inside it matches
    any other; a non-Hangul edge must not touch a letter or digit."""
    body = r"[\s\-]+".join(re.escape(part) for part in re.split(r"[\s\-]+", keyword))
    left = "" if _HANGUL.match(keyword[0]) else r"(?<!\w)"
    right = "" if _HANGUL.match(keyword[-1]) else r"(?!\w)"
    return left + body + right


class Keywords:
    """The stop keywords (``[mas] refusal_keywords``, whole words anywhere in
    the subject or first body lines) and bare keywords (``[mas]
    refusal_bare_keywords``, only as the whole subject or a whole line).

    Most mail holds no keyword at all: a plain substring test for each
    keyword's first word rules that out before any pattern runs."""

    def __init__(self, words: list[str], bare: list[str] = ()):
        self.words = [w for w in words if w]
        self.bare = {" ".join(w.split()) for w in bare if w}
        #: no wrapped bare keyword is longer than this (a cheap test before tidying a line)
        self.bare_longest = max((len(w) for w in self.bare), default=0) + 16
        ordered = sorted(self.words, key=len, reverse=True)  # the longest of overlapping keywords wins
        self.pattern = re.compile("|".join(f"({_word_pattern(w)})" for w in ordered)) if ordered else None
        self.ordered = ordered
        self.first_words = tuple({re.split(r"[\s\-]+", w)[0] for w in ordered})

    @classmethod
    def from_text(cls, words: str, bare: str = "") -> "Keywords":
        return cls(parse_keywords(words), parse_keywords(bare))

    def find(self, subject: str, lines: list[str]) -> str | None:
        """The keyword that makes this a refusal, or None."""
        folded = normalise("\n".join([subject] + lines))
        if self.pattern is not None and any(first in folded for first in self.first_words):
            found = self.pattern.search(folded)
            if found:
                return self.ordered[found.lastindex - 1]
        if not self.bare:
            return None
        texts = folded.split("\n")
        texts[0] = _REPLY_PREFIX.sub("", texts[0])
        for text in texts:
            if len(text) > self.bare_longest:
                continue
            bare = " ".join(text.strip(_WRAPPING).split())
            if bare and bare in self.bare:
                return bare
        return None


def refusal_keyword(message: InboundMessage, keywords: Keywords, lines: int) -> str | None:
    """The stop keyword found in the subject or the first body lines."""
    return keywords.find(message.subject, message.text_lines(lines))


def classify(message: InboundMessage, recipient: str, keywords: Keywords, lines: int) -> Classification:
    token = token_of(recipient, BOUNCE_PREFIX)
    if token or bounces.is_bounce(message.message, message.envelope_from):
        return Classification("bounce", token=token, bounce=bounces.read(message.message))
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
