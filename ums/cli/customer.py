"""``ums customer show ID``: the single customer view."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..clock import shown, site_zone, utcnow
from ..errors import UmsError
from ..holds import HoldGroup, describe, hold_of
from ..store import contacts, deliveries, timeline
from .common import json_option, pass_obj, run_async, write_json
from .service import _with_db


class NoSuchCustomer(UmsError):
    """No customer with id {customer_id!r}."""


@click.group()
def customer():
    """Look at one customer across every channel."""


def _waiting(entry: dict, now, tz) -> str:
    """Why a pending delivery waits and until when ("" for one that does not)."""
    if entry["state"] not in deliveries.PENDING_STATES or entry["state"] == "sending":
        return ""
    hold = hold_of(entry["state"], entry["hold"], entry["due_at"], now)
    if hold is None:
        return ""
    text = describe(HoldGroup(hold, 1, entry["due_at"], entry["last_error"]), now, tz)
    return " — " + text.partition(": ")[2]


def _summary(entry: dict, now, tz) -> str:
    if entry["kind"] == "event":
        return f"{entry['type']} from {entry['source']} → {entry['state']}" + (
            f" ({entry['service']})" if entry["service"] else "") + (f": {entry['error']}" if entry["error"] else "")
    if entry["kind"] == "delivery":
        attempts = ", ".join(f"#{a['attempt']} {a['disposition']}" for a in entry["cdr"])
        return (f"{entry['channel']} to {entry['recipient']} → {entry['state']}"
                + (f" [{attempts}]" if attempts else "")
                + (f" {entry['last_code']}" if entry["last_code"] else "")
                + _waiting(entry, now, tz))
    if entry["kind"] == "open":
        return f"opened delivery {entry['delivery_id']} of " + (
            f"campaign {entry['campaign']}" if entry["campaign"] else "a journey")
    if entry["kind"] == "consent":
        return (f"consent {entry['purpose']} ({entry['channel']}) "
                f"{'granted' if entry['granted'] else 'withdrawn'} via {entry['source']}")
    if entry["kind"] == "journey":
        return (f"journey {entry['journey']}: {entry['action']} {entry['step']}"
                + (f" → {entry['outcome']}" if entry["outcome"] else "")
                + (f" (delivery {entry['delivery_id']})" if entry["delivery_id"] else ""))
    if entry["kind"] == "click":
        return f"clicked {entry['url']} in delivery {entry['delivery_id']} of " + (
            f"campaign {entry['campaign']}" if entry["campaign"] else "a journey")
    return f"{entry['media']} from {entry['sender']}: {entry['subject'] or ''} ({entry['classification'] or 'message'})"


@customer.command()
@click.argument("customer_id")
@json_option('{"contact": {customer_id, name, grade, email, fax, phone, …}, "entries": [{"kind": '
             'event|journey|delivery|open|click|inbound|consent, "id", "at", …the entry\'s own fields}]}', shape="one object")
@pass_obj
def show(obj, customer_id, as_json):
    """Every event, journey step (with its outcome), delivery (all channels,
    with outcome), open and click of a tracked campaign, and inbound message,
    in time order."""
    view = run_async(_with_db(obj, lambda conn: timeline.for_customer(conn, customer_id)))
    if view is None:
        raise NoSuchCustomer(customer_id=customer_id)
    if as_json:
        write_json(obj, view)
        return
    contact = view["contact"]
    click.echo(f"{contact['customer_id']} {contact['name'] or ''} grade {contact['grade'] or '-'} "
               f"email {contact['email'] or '-'} fax {contact['fax'] or '-'} phone {contact['phone'] or '-'}")
    tz, now = site_zone(obj.config), utcnow()
    table = Table(f"time ({shown(now, tz, '%Z')})", "what", "id", "detail")
    for entry in view["entries"]:
        table.add_row(shown(entry["at"], tz, "%Y-%m-%d %H:%M:%S"), entry["kind"], str(entry["id"]),
                      _summary(entry, now, tz))
    Console(width=160).print(table)


@customer.command()
@click.argument("customer_id")
@json_option('{customer_id, "channels": {email|fax|voice: on?}, "topics": {TOPIC: on?}, preferred_channel, '
             'refuses_advertising, updated_at, "changes": [{recorded_at, channel, purpose, granted}]}',
             shape="one object")
@pass_obj
def preferences(obj, customer_id, as_json):
    """What the customer chose on the preference centre (the page behind the
    unsubscribe link of every message): channels and topics on or off, the
    preferred channel, whether they refuse all advertising, and each change
    (a consent record, source preference-centre)."""
    from .. import preferences as prefs

    async def work(conn):
        contact = await contacts.by_customer_id(conn, customer_id)
        return await prefs.summary(conn, contact, obj.config.get("preferences", "topics")) if contact else None

    view = run_async(_with_db(obj, work))
    if view is None:
        raise NoSuchCustomer(customer_id=customer_id)
    if as_json:
        write_json(obj, view)
        return
    tz = site_zone(obj.config)
    click.echo(f"{view['customer_id']}: channels {_flags(view['channels'])}; topics {_flags(view['topics'])}")
    click.echo(f"preferred channel {view['preferred_channel'] or '-'}; "
               f"advertising {'refused' if view['refuses_advertising'] else 'not refused'}; "
               f"last changed {shown(view['updated_at'], tz) if view['updated_at'] else 'never'}")
    for change in view["changes"]:
        click.echo(f"  {shown(change['recorded_at'], tz)}  {change['purpose']} ({change['channel']}) "
                   f"{'on' if change['granted'] else 'off'}")


def _flags(flags: dict) -> str:
    return ", ".join(f"{name} {'on' if flag else 'off'}" for name, flag in flags.items()) or "-"


COMMANDS = [customer]
