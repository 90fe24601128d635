"""`ums queue stats`: the delivery queue by state and channel."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..clock import site_zone, utcnow
from ..holds import describe, summarise
from ..store import deliveries
from .campaign import _in_transaction
from .common import pass_obj, run_async


@click.group()
def queue():
    """The PASS delivery queue."""


@queue.command()
@pass_obj
def stats(obj):
    """Deliveries by state and channel, and why the waiting ones wait."""

    async def work(conn):
        return await deliveries.stats(conn), await deliveries.pending_holds(conn)

    rows, holds = run_async(_in_transaction(obj, work))
    channels = sorted({channel for _, channel, _ in rows})
    counts = {(state, channel): count for state, channel, count in rows}
    table = Table(box=None, header_style="bold")
    table.add_column("state")
    for channel in channels:
        table.add_column(channel, justify="right")
    for state in deliveries.PENDING_STATES + deliveries.FINAL_STATES:
        if any((state, channel) in counts for channel in channels):
            table.add_row(state, *[str(counts.get((state, channel), 0)) for channel in channels])
    if not rows:
        click.echo("the queue is empty")
        return
    Console(width=120).print(table)
    now, tz = utcnow(), site_zone(obj.config)
    for group in summarise(holds, now):
        click.echo(describe(group, now, tz))


COMMANDS = [queue]
