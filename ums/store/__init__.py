"""All SQL lives in this package: one module per concept, each a set of small
async functions taking an open connection (``conn``) as first argument.

Callers choose the transaction (``async with db.begin() as conn``), so several
store calls can commit together — e.g. a delivery's final state and its CDR row.
"""

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything UMS stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value
