"""Many rows in one statement, the way the queue's hot path needs it.

Each chunk of rows is ONE statement, built once per shape, with rows passed
as plain values (SQLAlchemy's per-row parameter processing costs more than
the database's own work). Per row, SQLite's executemany steps once (each
step hands the interpreter lock away and waits to get it back) and
PostgreSQL plans and executes once. Used by :mod:`ums.queue.records` (CDR
rows) and :func:`ums.store.deliveries.finish` (state changes).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from operator import itemgetter

from sqlalchemy import DateTime, Numeric
from sqlalchemy.engine import Connection

from ..clock import to_utc
from ..db.models import UtcTime

#: SQLite takes at most 32766 parameters per statement
SQLITE_PARAMETERS = 32000


def insert_rows(conn: Connection, table, rows: list[dict]) -> None:
    """INSERT ``rows`` (all with the same keys) into ``table``."""
    if not rows:
        return
    columns = tuple(rows[0])
    pick = itemgetter(*columns)
    values = [pick(row) for row in rows] if len(columns) > 1 else [(pick(row),) for row in rows]
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(map(quote, columns))
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) SELECT * FROM {unnest(conn, table, columns)}",
                             column_lists(values, len(columns)))
    else:
        execute_rows_sqlite(conn, f"INSERT INTO {table.name} ({names}) VALUES {{rows}}", values,
                            converted_positions(table, columns))


def execute_rows_sqlite(conn: Connection, sql: str, rows: list[tuple], converted: tuple[int, ...]) -> None:
    """``sql`` with ``{rows}`` as one ``(?, …)`` group per row (tuples of
    values in column order), in chunks within SQLite's parameter limit; the
    ``converted`` positions are stored the way SQLAlchemy stores them."""
    if not rows:
        return
    width = len(rows[0])
    values = [_converted(row, converted) for row in rows] if converted else rows
    group = "(" + ", ".join(["?"] * width) + ")"
    for chunk in _chunks(values, SQLITE_PARAMETERS // width):
        conn.exec_driver_sql(sql.format(rows=", ".join([group] * len(chunk))),
                             tuple(value for row in chunk for value in row))


def converted_positions(table, columns: tuple[str, ...]) -> tuple[int, ...]:
    """Positions of ``columns`` whose values SQLite is given converted (datetimes
    as SQLAlchemy's text, decimals as floats: see :func:`_sqlite_value`)."""
    return tuple(index for index, name in enumerate(columns)
                 if isinstance(table.c[name].type, (UtcTime, DateTime, Numeric)))


def unnest(conn: Connection, table, columns: tuple[str, ...]) -> str:
    """``unnest($1::type[], …) AS v(columns)``: rows from one array parameter
    per column, each typed like ``table``'s column."""
    key = (table.name, columns)
    found = _UNNEST.get(key)
    if found is None:
        quote = conn.dialect.identifier_preparer.quote
        arrays = ", ".join(f"${number}::{table.c[name].type.compile(conn.dialect)}[]"
                           for number, name in enumerate(columns, 1))
        found = _UNNEST[key] = f"unnest({arrays}) AS v({', '.join(map(quote, columns))})"
    return found


_UNNEST: dict[tuple, str] = {}


def column_lists(rows: list[tuple], width: int) -> tuple[list, ...]:
    """One list per column of ``rows`` (tuples), for :func:`unnest`."""
    return tuple(list(column) for column in zip(*rows)) if rows else tuple([] for _ in range(width))


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _converted(value: tuple, positions: tuple[int, ...]) -> tuple:
    value = list(value)
    for index in positions:
        value[index] = _sqlite_value(value[index])
    return tuple(value)


def _sqlite_value(value):
    if isinstance(value, datetime):
        # what UtcTime stores on SQLite: UTC as YYYY-MM-DD HH:MM:SS.ffffff (no offset)
        return to_utc(value).isoformat(" ", "microseconds")[:26]
    if isinstance(value, Decimal):
        return float(value)
    return value
