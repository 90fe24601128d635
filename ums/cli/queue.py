"""`ums queue stats`: the delivery queue by state and channel."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..clock import site_zone, utcnow
from ..holds import describe, summarise
from ..store import deliveries
from .common import in_transaction as _in_transaction
from .common import json_option, pass_obj, run_async, write_json


@click.group()
def queue():
    """The PASS delivery queue."""


@queue.command()
@json_option('{"deliveries": {state: {channel: count}}, "lanes": {urgent|notice|marketing: pending count}, '
             '"waiting": [why, one line each]}', shape="one object")
@pass_obj
def stats(obj, as_json):
    """Deliveries by state and channel, pending ones by lane, and why the waiting ones wait."""

    async def work(conn):
        return await deliveries.stats(conn), await deliveries.pending_holds(conn), await deliveries.pending_by_lane(conn)

    rows, holds, by_lane = run_async(_in_transaction(obj, work))
    now, tz = utcnow(), site_zone(obj.config)
    waiting = [describe(group, now, tz) for group in summarise(holds, now)]
    if as_json:
        by_state: dict[str, dict[str, int]] = {}
        for state, channel, count in rows:
            by_state.setdefault(state, {})[channel] = count
        write_json(obj, {"deliveries": by_state, "lanes": by_lane, "waiting": waiting})
        return
    if not rows:
        click.echo("the queue is empty")
        return
    channels = sorted({channel for _, channel, _ in rows})
    counts = {(state, channel): count for state, channel, count in rows}
    table = Table(box=None, header_style="bold")
    table.add_column("state")
    for channel in channels:
        table.add_column(channel, justify="right")
    for state in deliveries.PENDING_STATES + deliveries.FINAL_STATES:
        if any((state, channel) in counts for channel in channels):
            table.add_row(state, *[str(counts.get((state, channel), 0)) for channel in channels])
    Console(width=120).print(table)
    click.echo("pending by lane: " + ", ".join(f"{lane} {count}" for lane, count in by_lane.items()))
    for line in waiting:
        click.echo(line)


COMMANDS = [queue]
