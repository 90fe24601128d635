"""``ums event``: look at events EPS received (unmatched, held, failed…)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..errors import UmsError
from ..store import events as event_store
from .common import json_option, local_time, pass_obj, pick, run_async, write_json
from .service import _with_db

STATES = ("received", "dispatched", "held", "unmatched", "failed")
#: what ``event list --json`` prints of each event
EVENT_FIELDS = ("id", "received_at", "source_system", "event_type", "customer_id", "state", "service_name", "error")


class NoSuchEvent(UmsError):
    """No event {event_id}."""


@click.group()
def event():
    """List and show events received by EPS."""


@event.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only events in this state.")
@click.option("--customer", help="Only events about this customer id.")
@click.option("--limit", default=50, show_default=True)
@json_option('{"events": [{' + ", ".join(EVENT_FIELDS) + '}], "counts": {state: number of events}}',
             shape="one object")
@pass_obj
def list_(obj, state, customer, limit, as_json):
    """The newest events, with their state and service."""
    async def work(conn):
        return await event_store.recent(conn, state, limit, customer), await event_store.count_by_state(conn)

    rows, counts = run_async(_with_db(obj, work))
    if as_json:
        write_json(obj, {"events": [pick(row, EVENT_FIELDS) for row in rows],
                         "counts": {name: counts.get(name, 0) for name in STATES}})
        return
    table = Table("id", "received", "source", "type", "customer", "state", "service", "error")
    for row in rows:
        table.add_row(str(row["id"]), local_time(obj, row["received_at"]), row["source_system"], row["event_type"],
                      row["customer_id"] or "", row["state"], row["service_name"] or "", row["error"] or "")
    Console(width=160).print(table)
    click.echo("  ".join(f"{name}={counts.get(name, 0)}" for name in STATES))


@event.command()
@click.argument("event_id", type=int)
@json_option("id, source_system, idempotency_key, event_type, customer_id, payload, state, service_name, "
             "service_version, error, received_at, processed_at and deliveries [{id, channel, recipient, state, "
             "template_name, attempts, last_code, last_error, fallback, created_at, finished_at}]",
             shape="one object (always printed as JSON)")
@pass_obj
def show(obj, event_id, as_json):
    """An event with its payload and the deliveries it produced (JSON)."""
    async def work(conn):
        found = await event_store.get(conn, event_id)
        if found:
            found["deliveries"] = await event_store.deliveries_of(conn, event_id)
        return found

    found = run_async(_with_db(obj, work))
    if found is None:
        raise NoSuchEvent(event_id=event_id)
    write_json(obj, found)


COMMANDS = [event]
