"""Korean advertising rules (Information and Communications Network Act, art. 50),
shared by every channel.

A message is ``advertising`` or ``transactional``; only the first is subject
to these rules:

* prior opt-in consent, recorded with source and date, reconfirmed every two
  years — :func:`consent_is_current`;
* the label ``(광고)`` first: in the email subject (:func:`label_subject`), as
  the first words of a voice script or on a fax cover (:func:`label_text`);
* the sender's name and contact and a free way to refuse —
  :func:`footer_text` / :func:`footer_html` (email body, fax page, end of a
  voice script);
* no sending between 21:00 and 08:00 recipient local time without night-time
  consent — :func:`in_quiet_hours` and :func:`quiet_hours_end`.

:func:`verdict` combines them for one delivery: send now, wait until a time,
or suppress with a reason. PASS calls it before every attempt; fax and voice
channels use the labelling helpers when they build their content.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

ADVERTISING, TRANSACTIONAL = "advertising", "transactional"
LABEL = "(광고)"
#: The free refusal wording the law expects next to the refusal address.
FREE_REFUSAL = "무료수신거부"
QUIET_STARTS, QUIET_ENDS = time(21, 0), time(8, 0)
#: Consent must be reconfirmed every two years; older consent counts as absent.
CONSENT_VALID_FOR = timedelta(days=730)


def label_subject(subject: str) -> str:
    """``(광고)`` in front of an email subject (once, even if called twice)."""
    subject = (subject or "").strip()
    return subject if subject.startswith(LABEL) else f"{LABEL} {subject}".rstrip()


def label_text(text: str) -> str:
    """``(광고)`` as the first words of a voice script or fax text."""
    return label_subject(text)


def footer_text(sender_name: str, sender_contact: str, refusal: str) -> str:
    """The plain-text sender and free-refusal block appended to advertising.

    ``refusal`` is how to refuse for free: an unsubscribe URL (email), a
    toll-free number (fax, voice).
    """
    return (
        f"\n\n--\n발신: {sender_name or ''} ({sender_contact or ''})\n"
        f"{FREE_REFUSAL}: {refusal}\n"
    )


def footer_html(sender_name: str, sender_contact: str, refusal_url: str) -> str:
    """The same block for an HTML body, with a clickable refusal link."""
    name, contact, url = (html.escape(value or "") for value in (sender_name, sender_contact, refusal_url))
    return (
        '<hr><p style="font-size:12px;color:#555">'
        f"발신: {name} ({contact})<br>"
        f'<a href="{url}">{FREE_REFUSAL}</a> ({url})</p>'
    )


def in_quiet_hours(now: datetime, tz: ZoneInfo) -> bool:
    """True between 21:00 and 08:00 local time in ``tz``."""
    local = now.astimezone(tz).time()
    return local >= QUIET_STARTS or local < QUIET_ENDS


def quiet_hours_end(now: datetime, tz: ZoneInfo) -> datetime:
    """The next 08:00 local time after ``now`` (as aware UTC)."""
    local = now.astimezone(tz)
    opening = local.replace(hour=QUIET_ENDS.hour, minute=0, second=0, microsecond=0)
    if local.time() >= QUIET_ENDS:
        opening += timedelta(days=1)
    return opening.astimezone(timezone.utc)


def consent_is_current(consent: dict, now: datetime, channel: str) -> bool:
    """A granted, not withdrawn consent for this channel (or "any"), under two years old."""
    if not consent.get("granted") or consent.get("withdrawn_at") is not None:
        return False
    if consent.get("channel", "any") not in ("any", channel):
        return False
    recorded = consent["recorded_at"]
    if recorded.tzinfo is None:
        recorded = recorded.replace(tzinfo=timezone.utc)
    return now - recorded <= CONSENT_VALID_FOR


@dataclass(frozen=True)
class Verdict:
    """What to do with one delivery now."""

    action: str                 # "send", "wait" or "suppress"
    reason: str = ""
    wait_until: datetime | None = None

    @property
    def send(self) -> bool:
        return self.action == "send"


SEND = Verdict("send")


def verdict(kind: str, channel: str, consents: list[dict], now: datetime, tz: ZoneInfo) -> Verdict:
    """Apply art. 50 to one delivery.

    ``consents`` are the recipient's advertising consent records (any order);
    the newest for this channel decides. Transactional messages always send.
    """
    if kind != ADVERTISING:
        return SEND
    relevant = [c for c in consents if c.get("channel", "any") in ("any", channel)]
    if not relevant:
        return Verdict("suppress", "no advertising consent")
    newest = max(relevant, key=lambda c: _aware(c["recorded_at"]))
    if not consent_is_current(newest, now, channel):
        reason = "consent withdrawn" if not newest.get("granted") or newest.get("withdrawn_at") else "consent older than two years"
        return Verdict("suppress", reason)
    if in_quiet_hours(now, tz) and not newest.get("night_time"):
        return Verdict("wait", "night-time rule (21:00-08:00)", quiet_hours_end(now, tz))
    return SEND


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
