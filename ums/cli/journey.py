"""`ums journey create|list|show|enter|pause|resume|stop`: multi-step flows
(:mod:`ums.journeys`). PASS advances the runs; these commands only change
the database (each in one transaction), so they work whether PASS runs or not.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..clock import shown, site_zone
from ..store import utcnow
from .common import in_transaction, json_option, pass_obj, pick, run_async, write_json

LIST_FIELDS = ("id", "name", "kind", "event_type", "state", "active", "created_by", "created_at")
STEP_FIELDS = "steps [{id, kind, at, passed, after, and the step's own fields}], ended {how: runs}"


@click.group()
def journey():
    """Journeys: multi-step flows (send, wait, branch, exit) walked once per customer."""


@journey.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--by", "created_by", default=None, help="Who made it (shown in listings).")
@pass_obj
def create(obj, file, created_by):
    """Create a journey from an XML or JSON FILE (see config/samples/journey-winback.*)."""
    from ..journeys import definitions, engine

    flow = definitions.load(Path(file).read_bytes(), where=f"in {Path(file).name}")

    async def work(conn):
        return await engine.create(conn, flow, created_by, utcnow())

    journey_id = run_async(in_transaction(obj, work))
    entry = f", entered by {flow.event_type} events" if flow.event_type else ""
    click.echo(f"journey {journey_id} {flow.name!r} created with {len(flow.steps)} steps{entry}")


@journey.command(name="list")
@json_option(LIST_FIELDS)
@pass_obj
def list_(obj, as_json):
    """List journeys with how many customers are in each now."""
    from ..journeys import engine
    from ..store import journeys as store

    async def work(conn):
        return [await engine.summary(conn, row["name"]) for row in await store.list_all(conn)]

    rows = run_async(in_transaction(obj, work))
    if as_json:
        write_json(obj, [pick(row, LIST_FIELDS) for row in rows])
        return
    if not rows:
        click.echo("no journeys")
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "name", "kind", "entered by", "state", "in it now", "created"):
        table.add_column(column)
    tz = site_zone(obj.config)
    for row in rows:
        table.add_row(str(row["id"]), row["name"], row["kind"], row["event_type"] or "", row["state"],
                      str(row["active"]), shown(row["created_at"], tz))
    Console(width=140).print(table)


@journey.command()
@click.argument("name")
@json_option(", ".join(LIST_FIELDS) + ", description, " + STEP_FIELDS, shape="one object")
@pass_obj
def show(obj, name, as_json):
    """Show a journey's steps with how many customers are at each and passed each."""
    from ..journeys import engine

    found = run_async(in_transaction(obj, lambda conn: engine.summary(conn, name)))
    if as_json:
        write_json(obj, found)
        return
    click.echo(f"journey {found['name']} ({found['kind']}, {found['state']}): {found['active']} in it now")
    table = Table(box=None, header_style="bold")
    for column in ("step", "kind", "what", "at it", "passed", "then"):
        table.add_column(column)
    for step in found["steps"]:
        table.add_row(step["id"], step["kind"], _what(step), str(step["at"]), str(step["passed"]),
                      _then(step))
    Console(width=140).print(table)
    if found["ended"]:
        click.echo("ended: " + ", ".join(f"{how} {n}" for how, n in sorted(found["ended"].items())))


def _what(step: dict) -> str:
    body = step.get(step["kind"]) or {}
    if step["kind"] == "send":
        return f"{body['channel']} {body['template']}"
    if step["kind"] == "wait":
        return (f"{body['duration']}s" if "duration" in body else
                f"until {body['until']} (customer's zone)" if "until" in body else f"until field {body['field']}")
    if step["kind"] == "branch":
        on = f"field {body['field']}" if "field" in body else f"outcome of {body.get('step') or 'the last send'}"
        return on
    return ""


def _then(step: dict) -> str:
    body = step.get("branch") or {}
    if body:
        cases = [f"{label} → {target}" for label, target in body["cases"]]
        return "; ".join(cases + [f"otherwise → {body.get('otherwise') or step['after'] or 'end'}"])
    return step["after"] or "end"


@journey.command()
@click.argument("name")
@click.option("--book", "books", multiple=True, help="Enter every contact of this address book (repeatable).")
@click.option("--contacts", "customers", default="", help="Customer ids, comma separated.")
@click.option("--campaign", "campaign_ref", default=None, help="Enter the audience of this campaign.")
@pass_obj
def enter(obj, name, books, customers, campaign_ref):
    """Put customers into journey NAME (each customer walks it once)."""
    from .. import campaigns
    from ..journeys import engine
    from ..store import campaigns as campaign_store
    from ..store import contacts as contact_store

    wanted = [c.strip() for c in customers.split(",") if c.strip()]
    if not (books or wanted or campaign_ref):
        raise click.UsageError("name who enters: --book, --contacts or --campaign")

    async def work(conn):
        await engine.named(conn, name)
        ids: list[int] = []
        if books:
            missing = set(books) - await campaign_store.books_named(conn, list(books))
            if missing:
                raise click.ClickException(f"no address book named {sorted(missing)[0]!r}")
            ids += [c["id"] for c in await campaign_store.audience(conn, {"audience": {"books": list(books)},
                                                                           "channel": "email"})]
        if campaign_ref:
            ids += [c["id"] for c in await campaign_store.audience(conn, await campaigns.find(conn, campaign_ref))]
        if wanted:
            found = await contact_store.by_customer_ids(conn, wanted)
            unknown = [c for c in wanted if c not in found]
            if unknown:
                raise click.ClickException(f"no customer {unknown[0]!r}")
            ids += [found[c]["id"] for c in wanted]
        source = f"campaign:{campaign_ref}" if campaign_ref else "cli"
        return len(await engine.enter(conn, name, ids, source, utcnow())), len(set(ids))

    started, asked = run_async(in_transaction(obj, work))
    click.echo(f"{started} customers entered journey {name!r}" +
               (f" ({asked - started} were in it already)" if asked > started else ""))


def _state_command(command_name: str, state: str, summary: str):
    @journey.command(name=command_name, help=summary)
    @click.argument("name")
    @pass_obj
    def command(obj, name):
        from ..journeys import engine

        done = run_async(in_transaction(obj, lambda conn: engine.set_state(conn, name, state, utcnow())))
        ended = f"; {done['stopped_runs']} runs ended" if state == "stopped" else ""
        click.echo(f"journey {name!r} {state}{ended}")
    return command


_state_command("pause", "paused", "Pause journey NAME: its customers wait where they are until resumed.")
_state_command("resume", "active", "Resume a paused journey NAME (waits that ended meanwhile go on at once).")
_state_command("stop", "stopped", "Stop journey NAME for good: every customer in it leaves, nothing more is sent.")

COMMANDS = [journey]
