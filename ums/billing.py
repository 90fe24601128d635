"""Billing: totals of CDR costs for a month, by campaign, channel or account.

Costs are written into each CDR row when the attempt is recorded, from the
``[billing]`` rate table (see :mod:`ums.cdr`); a report sums them, so it always
matches the CDR files finance receives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .clock import month_range, zone
from .errors import UmsError
from .store import cdr as cdr_store


class BadPeriod(UmsError):
    """Bad billing period {period!r}: use YYYY-MM."""


@dataclass
class Line:
    key: str
    attempts: int
    delivered: int
    pages: int
    minutes: int
    cost: Decimal


def month_bounds(period: str, tz_name: str) -> tuple[datetime, datetime]:
    """The month ``YYYY-MM`` of zone ``tz_name`` as ``[start, end)``, aware UTC."""
    if not period or not period.strip():
        raise BadPeriod(period=period)
    try:
        return month_range(period, None, zone(tz_name))
    except UmsError:
        raise BadPeriod(period=period) from None


async def report(conn, period: str, by: str, tz_name: str) -> list[Line]:
    """One line per campaign/channel/account for the month ``period`` (YYYY-MM, local time)."""
    if by not in cdr_store.GROUPINGS:
        raise UmsError(f"cannot group by {by!r}; use campaign, channel or account")
    start, end = month_bounds(period, tz_name)
    rows = await cdr_store.totals(conn, start, end, by)
    return [
        Line(row["key"] or "-", row["attempts"], int(row["delivered"] or 0), int(row["pages"] or 0),
             -(-int(row["billsec"] or 0) // 60), Decimal(str(row["cost"] or 0)).quantize(Decimal("0.0001")))
        for row in rows
    ]
