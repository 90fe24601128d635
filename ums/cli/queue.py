"""`ums queue stats`: the delivery queue by state and channel."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..store import deliveries
from .campaign import _in_transaction
from .common import pass_obj, run_async


@click.group()
def queue():
    """The PASS delivery queue."""


@queue.command()
@pass_obj
def stats(obj):
    """Deliveries by state and channel."""
    rows = run_async(_in_transaction(obj, deliveries.stats))
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


COMMANDS = [queue]
