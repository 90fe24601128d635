"""``ums service``: the EPS service registry (changes apply to running servers at once)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..store import services as service_store
from ..store import utcnow
from .common import json_option, local_time, pass_obj, pick, ready_database, run_async, write_json


async def _with_db(obj, work, write: bool = False):
    db = await ready_database(obj)
    try:
        async with (db.begin() if write else db.connect()) as conn:
            return await work(conn)
    finally:
        await db.close()


#: what ``service list --json`` prints of each service
SERVICE_FIELDS = ("name", "version", "event_type", "state", "kind", "priority", "lane", "system", "created_at",
                  "created_by")
SHOW_FIELDS = ("name", "version", "state", "system", "created_at", "created_by", "definition")


def _registry():
    from ums.event_services import registry

    return registry


def _lane(row: dict) -> str:
    """The lane a stored service's deliveries go in (``lane`` in its definition, else by kind)."""
    from ums.queue import lanes

    return lanes.settled((row.get("definition") or {}).get("lane"), row["kind"])


@click.group()
def service():
    """Register, list, show, stop, resume and remove EPS services."""


@service.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also list removed services.")
@json_option(SERVICE_FIELDS)
@pass_obj
def list_(obj, show_all, as_json):
    """List registered services (newest version of each)."""
    rows = [{**row, "lane": _lane(row)}
            for row in run_async(_with_db(obj, lambda conn: service_store.list_services(conn, show_all)))]
    if as_json:
        write_json(obj, [pick(row, SERVICE_FIELDS) for row in rows])
        return
    if not rows:
        click.echo("No services registered; add one with `ums service register FILE`.")
        return
    table = Table("name", "version", "event type", "state", "kind", "priority", "lane", "registered")
    for row in rows:
        table.add_row(row["name"], str(row["version"]), row["event_type"], row["state"], row["kind"],
                      str(row["priority"]), row["lane"], local_time(obj, row["created_at"]))
    Console(width=160).print(table)


@service.command()
@click.argument("name")
@json_option(SHOW_FIELDS, shape="one object (always printed as JSON)")
@pass_obj
def show(obj, name, as_json):
    """Show a service's definition in force (JSON)."""
    row = run_async(_with_db(obj, lambda conn: service_store.get(conn, name)))
    if row is None or row["state"] == "removed":
        raise _registry().NoSuchService(name=name)
    write_json(obj, pick(row, SHOW_FIELDS))


@service.command()
@click.argument("file", type=click.Path(dir_okay=False))
@pass_obj
def register(obj, file):
    """Register the service defined in FILE (.xml or .json); a new version if it exists."""
    from ums.event_services import definitions

    definition = definitions.load(file)
    version = run_async(_with_db(
        obj, lambda conn: _registry().register(conn, definition, utcnow(), "cli"), write=True))
    click.echo(f"registered {definition.name} version {version} (event type {definition.event_type})")


@service.command()
@click.argument("name")
@pass_obj
def stop(obj, name):
    """Stop NAME: its matching events are kept as held until it resumes."""
    run_async(_with_db(obj, lambda conn: _registry().stop(conn, name), write=True))
    click.echo(f"stopped {name}; its events are held until `ums service resume {name}`")


@service.command()
@click.argument("name")
@pass_obj
def resume(obj, name):
    """Resume NAME and dispatch the events it held."""
    count = run_async(_with_db(obj, lambda conn: _registry().resume(conn, name, utcnow()), write=True))
    click.echo(f"resumed {name}; dispatched {count} held event(s)")


@service.command()
@click.argument("name")
@pass_obj
def remove(obj, name):
    """Remove NAME; events it held become unmatched (kept and visible)."""
    count = run_async(_with_db(obj, lambda conn: _registry().remove(conn, name, utcnow()), write=True))
    click.echo(f"removed {name}" + (f"; {count} held event(s) now unmatched" if count else ""))


COMMANDS = [service]
