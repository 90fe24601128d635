"""One voice: at most N advertising contacts per customer per day and per week,
across every campaign, journey, one-off send and channel (``[policy]
advertising_per_day`` and ``advertising_per_week``; 0 turns a cap off, the
default). Transactional notices are never capped and never counted.

Why here, at send time: the audiences of campaigns and journeys overlap and
are planned apart, so only the moment of sending knows what a customer has
already received today.

What counts (exactly): deliveries of kind ``advertising`` to the customer
(its contact), one per delivery whatever its attempts or channel, that a
relay or gateway accepted — state ``sent``, or ``failed`` by a later bounce —
and whose ``finished_at`` falls in the period; plus those in flight (leased,
``sending``: they passed this check and are being sent now), counted at the
moment of the decision. A *day* is a calendar day and a *week* a calendar
week (Monday to Sunday) in the recipient's zone (their contact's
``timezone``, else ``[ums] timezone``). A capped delivery waits until the
next local midnight (or the next Monday for the weekly cap) — or ends
``expired`` when its own expiry comes first.

The counts for a whole claim batch come from one query
(:func:`ums.store.caps.advertising_sent`) into a :class:`Tally`, which the
batch then keeps up to date as it lets deliveries through, so two deliveries
for one customer in one batch are counted too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .clock import midnight, to_utc

#: what PASS reads back: far enough for the start of any week in any zone
LOOKBACK = timedelta(days=8)


@dataclass(frozen=True)
class Limits:
    """``[policy] advertising_per_day`` and ``advertising_per_week`` (0: no cap)."""

    per_day: int = 0
    per_week: int = 0

    @property
    def enabled(self) -> bool:
        return self.per_day > 0 or self.per_week > 0

    @classmethod
    def from_config(cls, config) -> "Limits":
        section = config.section("policy")
        return cls(section.get("advertising_per_day", 0), section.get("advertising_per_week", 0))


def day_start(now: datetime, tz: ZoneInfo) -> datetime:
    """The start (UTC) of ``now``'s calendar day in ``tz``."""
    return midnight(now.astimezone(tz).date(), tz)


def next_day(now: datetime, tz: ZoneInfo) -> datetime:
    return midnight(now.astimezone(tz).date() + timedelta(days=1), tz)


def week_start(now: datetime, tz: ZoneInfo) -> datetime:
    """The start (UTC) of ``now``'s calendar week (from Monday) in ``tz``."""
    today = now.astimezone(tz).date()
    return midnight(today - timedelta(days=today.weekday()), tz)


def next_week(now: datetime, tz: ZoneInfo) -> datetime:
    """The start (UTC) of the next calendar week (Monday 00:00) in ``tz``."""
    today = now.astimezone(tz).date()
    return midnight(today + timedelta(days=7 - today.weekday()), tz)


@dataclass
class Tally:
    """When each customer (contact id) was sent advertising lately — read once
    per batch, then noted as the batch lets more through."""

    sent: dict[int, list[datetime]] = field(default_factory=dict)

    def counts(self, contact_id: int, now: datetime, tz: ZoneInfo) -> tuple[int, int]:
        """(today, this week) for one customer, days and weeks of ``tz``."""
        times = self.sent.get(contact_id, [])
        today, this_week = day_start(now, tz), week_start(now, tz)
        return sum(1 for t in times if t >= today), sum(1 for t in times if t >= this_week)

    def note(self, contact_id: int, now: datetime) -> None:
        self.sent.setdefault(contact_id, []).append(to_utc(now))


@dataclass(frozen=True)
class Capped:
    """A customer at a cap: until when, and why (one line)."""

    until: datetime
    reason: str


def capped(limits: Limits, counts: tuple[int, int], now: datetime, tz: ZoneInfo) -> Capped | None:
    """Whether one more advertising message now would pass a cap (None: it may go).
    The weekly cap, when reached, wins: its release is the later one."""
    today, this_week = counts
    if limits.per_week and this_week >= limits.per_week:
        return Capped(next_week(now, tz),
                      f"frequency cap: {this_week} advertising messages this week (limit {limits.per_week} a week)")
    if limits.per_day and today >= limits.per_day:
        return Capped(next_day(now, tz),
                      f"frequency cap: {today} advertising messages today (limit {limits.per_day} a day)")
    return None
