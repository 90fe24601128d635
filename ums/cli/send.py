"""`ums send`: one message now or at a reserved time."""

from __future__ import annotations

import click

from ..addresses import is_valid
from ..outbox import BadSendRequest, SendRequest, enqueue
from ..store import contacts, templates, utcnow
from .campaign import _in_transaction, parse_time
from .common import pass_obj, run_async


@click.command()
@click.option("--to", "to", required=True, help="Email address, fax or phone number.")
@click.option("--template", required=True, help="Template name (for this channel).")
@click.option("--channel", default="email", show_default=True, type=click.Choice(["email", "fax", "voice"]))
@click.option("--kind", default="transactional", show_default=True,
              type=click.Choice(["transactional", "advertising"]))
@click.option("--at", "at", help="Reserved sending time (ISO 8601); default now.")
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="Template field (repeatable).")
@pass_obj
def send(obj, to, template, channel, kind, at, variables):
    """Queue one message; exits 0 once it is durably queued (PASS sends it)."""
    fields = {}
    for pair in variables:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--var")
        fields[key] = value

    if not is_valid(channel, to):
        raise BadSendRequest(reason=f"{to!r} is not a valid {channel} address")

    async def work(conn):
        if not await templates.get(conn, template, channel):
            raise BadSendRequest(reason=f"no {channel} template named {template!r}")
        contact = await contacts.by_email(conn, to) if channel == "email" else None
        request = SendRequest(channel=channel, recipient=to.strip(), template=template, kind=kind,
                              variables=fields, contact_id=contact["id"] if contact else None,
                              due_at=parse_time(at), service_name="cli")
        return await enqueue(conn, request, utcnow())

    delivery_id = run_async(_in_transaction(obj, work))
    click.echo(f"delivery {delivery_id} queued" + (f" for {at}" if at else ""))


COMMANDS = [send]
