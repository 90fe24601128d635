"""Why a delivery waits, and until when — said the same way everywhere.

Every pending delivery that is not simply next in line carries a
:class:`Hold` (``deliveries.hold``) and a release time (``deliveries.due_at``):
PASS sets them when it holds or defers a delivery, and every place that shows
a campaign or the queue (``campaign show|watch``, ``queue stats``,
``customer show``, the WAS campaign page, the API) summarises them with
:func:`summarise` and :func:`describe`, e.g.::

    200 waiting: night-time rule (21:00–08:00), next send 08:00 KST (in 3 h 37 m)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from zoneinfo import ZoneInfo

from .clock import duration, shown, to_utc


class Hold(str, Enum):
    NIGHT = "night"          # advertising between 21:00 and 08:00 recipient time
    WINDOW = "window"        # the channel's hourly window is full
    RETRY = "retry"          # a temporary failure; backing off before the next attempt
    RELAY = "relay"          # the relay or gateway could not be reached
    PAUSED = "paused"        # its campaign (or PASS) is paused
    RESERVED = "reserved"    # a reserved send not due yet
    SCHEDULED = "scheduled"  # its campaign has not started yet
    CAP = "cap"              # the customer had their advertising for the day or week (ums.caps)


REASONS = {
    Hold.NIGHT: "night-time rule (21:00–08:00)",
    Hold.WINDOW: "hourly window full",
    Hold.RETRY: "retrying after a temporary failure",
    Hold.RELAY: "relay unreachable",
    Hold.PAUSED: "campaign paused",
    Hold.RESERVED: "reserved for a later time",
    Hold.SCHEDULED: "campaign not started yet",
    Hold.CAP: "frequency cap reached (advertising per customer)",
}


@dataclass
class HoldGroup:
    """Pending deliveries that wait for one reason."""

    hold: Hold | None       # None: due and next in line
    count: int
    release: datetime | None = None   # the earliest release time in the group
    detail: str | None = None         # the last error (relay and retry holds)

    def as_dict(self, now: datetime, tz: ZoneInfo) -> dict:
        return {"hold": self.hold.value if self.hold else "due", "count": self.count,
                "release_at": self.release.isoformat() if self.release else None,
                "detail": self.detail, "text": describe(self, now, tz)}


#: campaigns in these states hold their deliveries back (cancelled ends them)
HOLDING_CAMPAIGN_STATES = ("draft", "scheduled", "paused", "missed")


def campaign_hold(campaign_state: str | None) -> Hold | None:
    """Why a campaign in ``campaign_state`` holds its deliveries back (None: it
    does not). The one place this is decided: the claim query, the send-time
    policy, the worker's in-memory check and every summary ask here."""
    if campaign_state == "paused":
        return Hold.PAUSED
    if campaign_state in HOLDING_CAMPAIGN_STATES:
        return Hold.SCHEDULED
    return None


def campaign_stops(campaign_state: str | None) -> bool:
    """A job in memory whose campaign is now in this state must not be sent."""
    return campaign_state == "cancelled" or campaign_hold(campaign_state) is not None


def hold_of(state: str, hold: str | None, due_at: datetime | None, now: datetime,
            campaign_state: str | None = None) -> Hold | None:
    """The hold of one pending delivery, from its row (and its campaign's state)."""
    held = campaign_hold(campaign_state)
    if held is not None:
        return held
    if hold:
        try:
            return Hold(hold)
        except ValueError:
            return None
    if state == "waiting":
        return Hold.NIGHT
    if state == "retry":
        return Hold.RETRY
    if due_at is not None and to_utc(due_at) > now:
        return Hold.RESERVED
    return None


def summarise(rows, now: datetime) -> list[HoldGroup]:
    """Group ``(state, hold, count, min due_at, last_error, campaign state)``
    rows of pending deliveries by hold, the biggest group first."""
    groups: dict[Hold | None, HoldGroup] = {}
    for state, hold, count, due_at, detail, campaign_state in rows:
        if state == "sending":
            key = None
        else:
            key = hold_of(state, hold, due_at, now, campaign_state)
        group = groups.setdefault(key, HoldGroup(key, 0))
        group.count += count
        release = to_utc(due_at) if key not in (None, Hold.PAUSED, Hold.SCHEDULED) else None
        if release is not None and (group.release is None or release < group.release):
            group.release = release
        if detail and key in (Hold.RELAY, Hold.RETRY):
            group.detail = detail
    return sorted(groups.values(), key=lambda g: -g.count)


def _shortened(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


def describe(group: HoldGroup, now: datetime, tz: ZoneInfo) -> str:
    """One line a person reads: how many, why, and when the next one goes."""
    if group.hold is None:
        return f"{group.count} due now (being sent or next in line)"
    text = f"{group.count} waiting: {REASONS[group.hold]}"
    if group.detail and group.hold in (Hold.RELAY, Hold.RETRY):
        text += f" ({_shortened(group.detail, 160)})"
    if group.hold == Hold.PAUSED:
        return text + ", until resumed"
    if group.release is not None:
        release = max(group.release, now)
        same_day = release.astimezone(tz).date() == now.astimezone(tz).date()
        when = shown(release, tz, "%H:%M %Z" if same_day else "%Y-%m-%d %H:%M %Z")
        text += f", next send {when} (in {duration((release - now).total_seconds())})"
    return text
