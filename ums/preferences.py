"""The preference centre: what a customer chose about being contacted, and
what that allows. The page behind every unsubscribe link (``was.pages.unsubscribe``)
shows and changes it; senders ask it.

A customer chooses, with the token of a message sent to them (their proof):

* **channels** (email, fax, voice) on or off. Off means "not on this channel"
  for advertising and notices alike; at least one channel stays on, so an
  account or fraud alert can always reach them (:class:`BadChoice` otherwise);
* **topics** (the site's list, ``[preferences] topics``) on or off — they
  are kinds of advertising, so they never stop a transactional notice;
* **refuse all advertising**: the existing suppression (scope
  ``advertising``, through :mod:`ums.refusal`, on every address of the
  contact), so everything that honours suppression — PASS before each send,
  campaign checks — keeps doing so; unticking it lifts only such entries
  (never a bounce's) and records opt-in consent;
* **a preferred channel**: senders that may pick a channel try it first.

Every change is also a consent record (``consents``: source
``preference-centre``, the application clock's time), so it shows with its
date on the customer's timeline. Purposes: ``channel`` (per channel),
``topic:<name>``, ``preferred``, ``advertising`` (the refusal, which art. 50
reads too).

Senders call :func:`preferred_channel` and :func:`allows`, or, inside a
sync batch, :func:`allows_given` and :func:`ordered` on rows from
:func:`ums.store.preferences.by_contacts`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from . import refusal, tracking
from .addresses import CHANNELS, is_valid, normalize
from .errors import UmsError
from .store import contacts as contact_store
from .store import preferences as store
from .store import suppression

SOURCE = "preference-centre"
#: a topic's name is kept in ``consents.purpose`` (16 characters) after "topic:"
TOPIC_MAX = 10
_FORM_TOKEN = re.compile(r"[0-9a-f]{32}")


class BadChoice(UmsError):
    """Cannot save these preferences: {reason}."""


class BadFormToken(UmsError):
    """This form was not sent from your preference page (or is from another message): open the link in the message again."""


@dataclass(frozen=True)
class Choice:
    """What a customer wants: channels and topics off, a preferred channel
    (None: no preference), and whether they refuse all advertising."""

    channels_off: frozenset[str] = frozenset()
    topics_off: frozenset[str] = frozenset()
    preferred_channel: str | None = None
    refuse_advertising: bool = False


@dataclass(frozen=True)
class Current(Choice):
    """A contact's choice as stored, with when it last changed (None: never saved)."""

    updated_at: datetime | None = None


# --- what senders ask --------------------------------------------------------

async def preferred_channel(conn: AsyncConnection, contact_id: int) -> str | None:
    """The channel the customer asked to be reached on first, or None (then
    the sender keeps its own order). A channel they turned off is never it."""
    row = await store.get(conn, contact_id)
    return row["preferred_channel"] if row else None


async def allows(conn: AsyncConnection, contact_id: int, channel: str, topic: str | None,
                 advertising: bool) -> bool:
    """Whether the customer lets a message reach them on ``channel``:
    ``topic`` (a site topic, or None) and ``advertising`` say what it is.
    Advertising also needs their addresses not to refuse advertising (the
    suppression list); art. 50 consent and the night rule stay PASS's."""
    if advertising and await _refuses_advertising(conn, await contact_store.get(conn, contact_id)):
        return False
    return allows_given(await store.get(conn, contact_id), channel, topic, advertising)


def allows_given(row: dict | None, channel: str, topic: str | None, advertising: bool) -> bool:
    """:func:`allows` on a stored row (None: never saved) without the
    suppression check — the caller (PASS) checks suppression itself."""
    if row is None:
        return True
    if channel in row["channels_off"]:
        return False
    return not (advertising and topic is not None and topic in row["topics_off"])


def ordered(channels: list[str], row: dict | None) -> list[str]:
    """A sender's channel order for this customer (``row`` from
    :func:`ums.store.preferences.by_contacts`, None: never saved): their
    preferred channel first when it is among ``channels``, the rest in the
    sender's order, channels they turned off left out."""
    if row is None:
        return list(channels)
    kept = [channel for channel in channels if channel not in row["channels_off"]]
    preferred = row["preferred_channel"]
    return ([preferred] if preferred in kept else []) + [channel for channel in kept if channel != preferred]


# --- the page ----------------------------------------------------------------

def form_token(key: str, delivery_token: str) -> str:
    """The hidden field that proves a form POST came from the page of this
    delivery's link (an HMAC of the link's token with the site key)."""
    message = f"preferences/{delivery_token}".encode("utf-8")
    return hmac.new(key.encode("ascii"), message, hashlib.sha256).hexdigest()[:32]


async def check_form_token(conn: AsyncConnection, delivery_token: str, given: str | None, now: datetime) -> None:
    """Raise :class:`BadFormToken` unless ``given`` is this link's form token."""
    key = await tracking.site_key(conn, now)
    if not (_FORM_TOKEN.fullmatch(given or "") and hmac.compare_digest(form_token(key, delivery_token), given)):
        raise BadFormToken()


async def page_token(conn: AsyncConnection, delivery_token: str, now: datetime) -> str:
    return form_token(await tracking.site_key(conn, now), delivery_token)


async def contact_of(conn: AsyncConnection, delivery: dict) -> dict | None:
    """The customer a delivery went to: its contact, else the contact with its email address."""
    if delivery.get("contact_id"):
        return await contact_store.get(conn, delivery["contact_id"])
    if delivery["channel"] == "email":
        return await contact_store.by_email(conn, delivery["recipient"])
    return None


async def current(conn: AsyncConnection, contact: dict) -> Current:
    row = await store.get(conn, contact["id"]) or {}
    return Current(
        channels_off=frozenset(row.get("channels_off", ())), topics_off=frozenset(row.get("topics_off", ())),
        preferred_channel=row.get("preferred_channel"), refuse_advertising=await _refuses_advertising(conn, contact),
        updated_at=row.get("updated_at"),
    )


async def summary(conn: AsyncConnection, contact: dict, topics: list[str]) -> dict:
    """The contact's choice as shown by ``ums customer preferences``: each
    channel and site topic on (True) or off, the preferred channel, the
    refusal of advertising, the last change and every preference-centre consent record."""
    now = await current(conn, contact)
    records = [r for r in await store.consent_records(conn, contact["id"]) if r["source"] == SOURCE]
    return {
        "customer_id": contact["customer_id"],
        "channels": {channel: channel not in now.channels_off for channel in CHANNELS},
        "topics": {topic: topic not in now.topics_off for topic in topics},
        "preferred_channel": now.preferred_channel,
        "refuses_advertising": now.refuse_advertising,
        "updated_at": now.updated_at,
        "changes": [{k: r[k] for k in ("recorded_at", "channel", "purpose", "granted")} for r in records],
    }


def validate(choice: Choice, topics: list[str]) -> None:
    unknown = set(choice.channels_off) - set(CHANNELS)
    if unknown:
        raise BadChoice(reason=f"unknown channel {sorted(unknown)[0]!r}")
    unknown_topics = set(choice.topics_off) - set(topics)
    if unknown_topics:
        raise BadChoice(reason=f"unknown topic {sorted(unknown_topics)[0]!r}")
    if set(CHANNELS) <= set(choice.channels_off):
        raise BadChoice(reason="keep at least one channel on for account notices "
                               "(to stop advertising, tick 'refuse all advertising')")
    if choice.preferred_channel is not None:
        if choice.preferred_channel not in CHANNELS:
            raise BadChoice(reason=f"unknown channel {choice.preferred_channel!r}")
        if choice.preferred_channel in choice.channels_off:
            raise BadChoice(reason=f"the preferred channel {choice.preferred_channel} is turned off")


async def save(conn: AsyncConnection, delivery: dict, contact: dict, choice: Choice, topics: list[str],
               now: datetime) -> list[str]:
    """Apply the customer's ``choice`` (validated against the site's
    ``topics``), writing one consent record per change; returns the changes
    (``"email off"``, ``"topic 대출 off"``, ``"preferred fax"``,
    ``"advertising refused"``…), empty when nothing changed."""
    validate(choice, topics)
    before = await current(conn, contact)
    changes = []
    for channel in CHANNELS:
        off = channel in choice.channels_off
        if off != (channel in before.channels_off):
            changes.append(await _record(conn, contact, now, not off, f"{channel} {'off' if off else 'on'}",
                                         channel=channel, purpose="channel"))
    for topic in sorted(set(choice.topics_off) ^ set(before.topics_off)):
        off = topic in choice.topics_off
        changes.append(await _record(conn, contact, now, not off, f"topic {topic} {'off' if off else 'on'}",
                                     purpose=f"topic:{topic}"))
    if choice.preferred_channel != before.preferred_channel:
        wanted = choice.preferred_channel
        changes.append(await _record(conn, contact, now, wanted is not None, f"preferred {wanted or 'none'}",
                                     channel=wanted or "any", purpose="preferred"))
    if changes:
        await store.save(conn, contact["id"], list(choice.channels_off), list(choice.topics_off),
                         choice.preferred_channel, SOURCE, now)
    if choice.refuse_advertising != before.refuse_advertising:
        changes.append(await _advertising(conn, delivery, contact, choice.refuse_advertising, now))
    return changes


async def _record(conn, contact: dict, now: datetime, granted: bool, change: str, channel: str = "any",
                  purpose: str = "advertising", night_time: bool = False) -> str:
    await contact_store.record_consent(conn, contact["id"], granted, SOURCE, now, night_time=night_time,
                                       channel=channel, purpose=purpose)
    return change


async def _advertising(conn, delivery: dict, contact: dict, refuse: bool, now: datetime) -> str:
    if refuse:
        await refusal.refuse_address(
            conn, delivery["channel"], delivery["recipient"], now, SOURCE, reason="unsubscribe",
            delivery_id=delivery["id"], contact_id=contact["id"], evidence=refusal.token_evidence(delivery))
        return await _record(conn, contact, now, False, "advertising refused")
    for channel, address in _addresses(contact):
        if await suppression.scope_of(conn, channel, address) == suppression.ADVERTISING:
            await suppression.remove(conn, channel, address)
    records = [r for r in await store.consent_records(conn, contact["id"]) if r["purpose"] == "advertising" and r["granted"]]
    night = bool(records) and records[0]["night_time"]
    # the night-time consent they had before refusing stays as it was
    return await _record(conn, contact, now, True, "advertising allowed", night_time=night)


async def _refuses_advertising(conn, contact: dict | None) -> bool:
    """Whether any of the contact's addresses refuses advertising (a suppression of scope advertising)."""
    for channel, address in _addresses(contact or {}):
        if await suppression.scope_of(conn, channel, address) == suppression.ADVERTISING:
            return True
    return False


def _addresses(contact: dict) -> list[tuple[str, str]]:
    found = []
    for channel, column in refusal.CONTACT_COLUMNS.items():
        value = (contact.get(column) or "").strip()
        if value and is_valid(channel, value):
            found.append((channel, normalize(channel, value)))
    return found
