"""Times people type into WAS and read on its pages are in the site's time zone
(``[ums] timezone``, Asia/Seoul by default); the database keeps aware UTC.

A date picker sends a naive ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM``: it means
that wall-clock time where the site is, not in UTC. A value that names its own
offset (``…+09:00``, ``…Z``) keeps it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from ums import advertising


def site_zone(config) -> ZoneInfo:
    """The zone of ``[ums] timezone``; an unknown name falls back to Asia/Seoul."""
    return advertising.zone(config.section("ums").get("timezone"))


def parse_local(text: str | None, tz: ZoneInfo) -> datetime | None:
    """A picker's date or date-time as aware UTC; ``None`` for empty; ValueError when malformed."""
    text = (text or "").strip()
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(timezone.utc)


def day_range(first: str | None, last: str | None, tz: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """``[start of first day, start of the day after last)`` in ``tz``, as aware UTC.

    Either end may be empty (open). Raises ValueError for a malformed date.
    """
    start = _midnight(date.fromisoformat(first.strip()), tz) if first and first.strip() else None
    end = _midnight(date.fromisoformat(last.strip()) + timedelta(days=1), tz) if last and last.strip() else None
    return start, end


def month_range(text: str | None, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month ``YYYY-MM`` (default: this month in ``tz``) as ``[start, end)`` aware UTC."""
    if not text:
        text = now.astimezone(tz).strftime("%Y-%m")
    year, month = (int(part) for part in text.split("-"))
    first = date(year, month, 1)
    following = (first + timedelta(days=32)).replace(day=1)
    return _midnight(first, tz), _midnight(following, tz)


def shown(value: datetime | None, tz: ZoneInfo, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """A stored time as the site reads it; naive values from the database are UTC."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(tz).strftime(pattern)


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)
