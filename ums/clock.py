"""Time, in one place: the application clock, parsing what people type, and
showing stored times to them.

The rules (DESIGN.md, "Time"):

* **One clock.** Every decision (due times, the night rule, leases, misfire
  grace, "today") reads :func:`utcnow`, or the ``clock`` a caller was handed
  (the runtime's ``Context.clock``, which tests replace). No decision reads the
  database server's clock. ``UMS_CLOCK_SHIFT=SECONDS`` in the environment
  moves the application clock that far from the system's (it still runs at
  real speed), in every process that inherits it — so the test suite can run
  the ``ums`` command in child processes at a chosen hour whatever the hour
  it really is. It is never set in production.
* **Stored as UTC.** Values go into the database as UTC and come back aware
  (UTC) on SQLite and PostgreSQL alike — see :class:`ums.db.models.UtcTime`,
  which uses :func:`to_utc` and :func:`as_utc`.
* **Read in the site's zone.** A typed time with an offset (``+09:00``, ``Z``)
  keeps it; one without is wall-clock time in ``[ums] timezone`` (Asia/Seoul by
  default). :func:`parse_time` is the one parser for the CLI, campaign files
  (XML and JSON), the API and WAS forms; day and month arguments are days and
  months of that zone (:func:`day_range`, :func:`month_range`).
* **Shown with its zone.** :func:`shown` writes a stored time in a zone and
  names the zone (``2026-12-02 04:22 KST``), unless a form field needs the
  bare value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import UmsError

UTC = timezone.utc
DEFAULT_ZONE = "Asia/Seoul"
#: the environment variable that shifts the application clock (seconds, may be negative)
SHIFT_VARIABLE = "UMS_CLOCK_SHIFT"


class BadTime(UmsError):
    """Bad time {text!r}: {reason} (use ISO 8601, e.g. 2026-12-01T09:00+09:00; without an offset it is read in {zone})."""


class BadClockShift(UmsError):
    """Bad UMS_CLOCK_SHIFT {text!r}: a number of seconds is expected."""


class BadDate(UmsError):
    """Bad {what} {text!r}: use {pattern}."""


# --- the clock ---------------------------------------------------------------------------

@lru_cache(maxsize=16)
def _shift(text: str) -> timedelta:
    """The clock shift that ``$UMS_CLOCK_SHIFT`` = ``text`` asks for."""
    if not text:
        return timedelta(0)
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        raise BadClockShift(text=text) from None


#: a clock that replaces the application clock in this process (a test's
#: :class:`Clock`, for in-process commands); None in production
injected: Callable[[], datetime] | None = None


def utcnow() -> datetime:
    """Now, aware UTC, on the application clock: :data:`injected` when set,
    else the system clock moved by ``$UMS_CLOCK_SHIFT`` seconds as the
    variable reads *now* (never as it read when the process first asked: a
    process whose environment changes — the test suite's in-process commands
    — follows it)."""
    if injected is not None:
        return injected()
    return datetime.now(UTC) + _shift(os.environ.get(SHIFT_VARIABLE, "").strip())


def shift_to(local: time, tz: ZoneInfo, now: datetime | None = None) -> float:
    """The shift (seconds) that puts the clock at the nearest ``local`` time
    of day in ``tz`` — e.g. noon in Seoul for a test run at any hour."""
    now = now or datetime.now(UTC)
    here = now.astimezone(tz)
    target = datetime.combine(here.date(), local, tzinfo=tz)
    candidates = [target + timedelta(days=d) for d in (-1, 0, 1)]
    nearest = min(candidates, key=lambda t: abs((t - now).total_seconds()))
    return (nearest - now).total_seconds()


class Clock:
    """A settable clock for tests: ``clock = Clock(t0)``; ``clock()`` is ``t0``
    until ``clock.now`` is set again."""

    def __init__(self, now: datetime):
        self.now = to_utc(now)

    def __call__(self) -> datetime:
        return self.now


# --- storage --------------------------------------------------------------------------------

def to_utc(value: datetime | None) -> datetime | None:
    """An aware time converted to UTC; a naive one is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """A value read from the database as aware UTC (SQLite hands back naive UTC)."""
    return to_utc(value)


# --- zones ----------------------------------------------------------------------------------

def zone(name: str | None, default: str = DEFAULT_ZONE) -> ZoneInfo:
    """The zone named ``name``; an unknown or empty name falls back to ``default``."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def site_zone(config) -> ZoneInfo:
    """The zone of ``[ums] timezone``; an unknown name falls back to Asia/Seoul."""
    return zone(config.section("ums").get("timezone"))


# --- reading what people type ---------------------------------------------------------------

def parse_time(text: str | None, tz: ZoneInfo) -> datetime | None:
    """``text`` (ISO 8601) as aware UTC; ``None`` for empty. With an offset
    (``+09:00``, ``Z``) the offset is honoured; without one it is wall-clock
    time in ``tz``. A bare date means its midnight in ``tz``."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise BadTime(text=text, reason="not a string", zone=tz.key)
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        raise BadTime(text=text, reason="not an ISO 8601 time", zone=tz.key) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def parse_local(text: str | None, tz: ZoneInfo) -> datetime | None:
    """:func:`parse_time` raising ValueError (for form handlers that catch it)."""
    try:
        return parse_time(text, tz)
    except BadTime as exc:
        raise ValueError(str(exc)) from None


def parse_day(text: str, tz: ZoneInfo, what: str = "date") -> datetime:
    """A day ``YYYY-MM-DD`` as the aware UTC time of its midnight in ``tz``; a
    full time (with or without offset) is read as :func:`parse_time` reads it."""
    text = (text or "").strip()
    if len(text) == 10:
        try:
            return midnight(date.fromisoformat(text), tz)
        except ValueError:
            raise BadDate(what=what, text=text, pattern="YYYY-MM-DD") from None
    return parse_time(text, tz)


def day_range(first: str | None, last: str | None, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """``[start of first day, start of the day after last)`` in ``tz``, as aware UTC.

    Either end may be empty (open). Raises ValueError for a malformed date.
    """
    start = midnight(date.fromisoformat(first.strip()), tz) if first and first.strip() else None
    end = midnight(date.fromisoformat(last.strip()) + timedelta(days=1), tz) if last and last.strip() else None
    return start, end


def month_range(text: str | None, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month ``YYYY-MM`` (default: this month in ``tz``) as
    ``[start, end)`` aware UTC. Raises :class:`BadDate` when malformed."""
    if not text:
        text = now.astimezone(tz).strftime("%Y-%m")
    try:
        year, month = (int(part) for part in text.strip().split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise BadDate(what="month", text=text, pattern="YYYY-MM") from None
    following = (first + timedelta(days=32)).replace(day=1)
    return midnight(first, tz), midnight(following, tz)


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The start of ``day`` in ``tz``, as aware UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


# --- showing times to people ----------------------------------------------------------------

def shown(value: datetime | None, tz: ZoneInfo, pattern: str = "%Y-%m-%d %H:%M %Z") -> str:
    """A stored time as read in ``tz``, naming the zone by default
    (``2026-12-02 04:22 KST``); naive values from the database are UTC."""
    if value is None:
        return ""
    return to_utc(value).astimezone(tz).strftime(pattern)


def duration(seconds: float) -> str:
    """A wait as people say it: ``3 h 37 m``, ``12 m``, ``40 s``."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} m"
    if minutes:
        return f"{minutes} m"
    return f"{secs} s"
