"""`ums cdr export`: CDR rows of a period as CSV or XML."""

from __future__ import annotations

import sys
from datetime import date, datetime, time, timedelta

import click

from .. import cdr as ums_cdr
from ..advertising import zone
from ..store import cdr as cdr_store
from .common import pass_obj, ready_database, run_async


def day_start(text: str, tz) -> datetime:
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tz)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (YYYY-MM-DD) or ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)


@click.group()
def cdr():
    """Call detail records (one per delivery attempt)."""


@cdr.command()
@click.option("--since", required=True, help="First day (YYYY-MM-DD) or time, in [ums] timezone.")
@click.option("--until", help="Day after the last (exclusive); default: the day after --since.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xml"]), default="csv", show_default=True)
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="File (default stdout).")
@pass_obj
def export(obj, since, until, fmt, output):
    """Write CDR rows with start in [SINCE, UNTIL) in the documented column order."""
    tz = zone(obj.config.get("ums", "timezone"))
    start = day_start(since, tz)
    end = day_start(until, tz) if until else start + timedelta(days=1)
    if end <= start:
        raise click.BadParameter("--until must be after --since")
    count = run_async(_export(obj, start, end, fmt, output))
    click.echo(f"{count} records", err=True)


async def _export(obj, start, end, fmt, output) -> int:
    db = await ready_database(obj)
    count = 0
    try:
        async with db.connect() as conn:
            if fmt == "csv":
                output.write(ums_cdr.to_csv([], header=True))
            else:
                output.write('<?xml version="1.0" encoding="UTF-8"?>\n<cdrs>\n')
            batch = []
            async for row in cdr_store.between(conn, start, end):
                batch.append(row)
                count += 1
                if len(batch) >= 1000:
                    _write(output, batch, fmt)
                    batch = []
            _write(output, batch, fmt)
            if fmt == "xml":
                output.write("</cdrs>\n")
    finally:
        await db.close()
    return count


def _write(output, rows, fmt) -> None:
    if fmt == "csv":
        output.write(ums_cdr.to_csv(rows, header=False))
    else:
        output.write("".join(ums_cdr.to_xml(rows).splitlines(True)[2:-1]))


COMMANDS = [cdr]
