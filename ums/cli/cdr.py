"""`ums cdr export`: CDR rows of a period as CSV or XML."""

from __future__ import annotations

from datetime import timedelta

import click

from .. import cdr as ums_cdr
from ..clock import parse_day, site_zone
from ..store import cdr as cdr_store
from .common import pass_obj, ready_database, run_async


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
    tz = site_zone(obj.config)
    start = parse_day(since, tz, "--since")
    end = parse_day(until, tz, "--until") if until else start + timedelta(days=1)
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
