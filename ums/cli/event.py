"""``ums event``: look at events EPS received (unmatched, held, failed…)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ..errors import UmsError
from ..store import events as event_store
from .common import local_time, pass_obj, run_async
from .service import _with_db

STATES = ("received", "dispatched", "held", "unmatched", "failed")


class NoSuchEvent(UmsError):
    """No event {event_id}."""


@click.group()
def event():
    """List and show events received by EPS."""


@event.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only events in this state.")
@click.option("--customer", help="Only events about this customer id.")
@click.option("--limit", default=50, show_default=True)
@pass_obj
def list_(obj, state, customer, limit):
    """The newest events, with their state and service."""
    async def work(conn):
        return await event_store.recent(conn, state, limit, customer), await event_store.count_by_state(conn)

    rows, counts = run_async(_with_db(obj, work))
    table = Table("id", "received", "source", "type", "customer", "state", "service", "error")
    for row in rows:
        table.add_row(str(row["id"]), local_time(obj, row["received_at"]), row["source_system"], row["event_type"],
                      row["customer_id"] or "", row["state"], row["service_name"] or "", row["error"] or "")
    Console(width=160).print(table)
    click.echo("  ".join(f"{name}={counts.get(name, 0)}" for name in STATES))


@event.command()
@click.argument("event_id", type=int)
@pass_obj
def show(obj, event_id):
    """An event with its payload and the deliveries it produced (JSON)."""
    async def work(conn):
        found = await event_store.get(conn, event_id)
        if found:
            found["deliveries"] = await event_store.deliveries_of(conn, event_id)
        return found

    found = run_async(_with_db(obj, work))
    if found is None:
        raise NoSuchEvent(event_id=event_id)
    click.echo(json.dumps(found, ensure_ascii=False, indent=2, default=str))


COMMANDS = [event]
