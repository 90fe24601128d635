"""`ums send`: one message now or at a reserved time.

The message is sent as its template's kind unless ``--kind`` says otherwise,
and an advertising template is never sent as transactional
(:func:`ums.outbox.kind_for`). ``--at`` is read by :func:`ums.clock.parse_time`
(an offset is honoured; without one it is in ``[ums] timezone``); a time more
than a minute ago is refused; the confirmation names the zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import click

from ..addresses import is_valid
from ..clock import parse_time, shown, site_zone
from ..errors import UmsError
from ..outbox import BadSendRequest, SendRequest, enqueue, kind_for
from ..store import contacts, templates, utcnow
from .common import in_transaction as _in_transaction
from .common import pass_obj, run_async

#: a time this close behind now still counts as "now" (the time it took to type the command)
PAST_TOLERANCE = timedelta(seconds=60)


class PastSend(UmsError):
    """The sending time {at} is in the past (it is {now} now); give a later --at, or leave it out to send now."""


def parse_fields(pairs: tuple[str, ...]) -> dict:
    """``--var KEY=VALUE`` options as a dict (a pair without ``=`` is refused)."""
    fields = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--var")
        fields[key] = value
    return fields


def due_time(at: str | None, now: datetime, tz) -> datetime | None:
    """``--at`` as aware UTC (None: now); refused with :class:`PastSend` when
    it is more than :data:`PAST_TOLERANCE` before ``now``."""
    due = parse_time(at, tz)
    if due is not None and due < now - PAST_TOLERANCE:
        raise PastSend(at=shown(due, tz), now=shown(now, tz))
    return due


@click.command()
@click.option("--to", "to", required=True, help="Email address, fax or phone number.")
@click.option("--template", required=True, help="Template name (for this channel).")
@click.option("--channel", default="email", show_default=True, type=click.Choice(["email", "fax", "voice"]))
@click.option("--kind", default=None, type=click.Choice(["transactional", "advertising"]),
              help="Default: the template's kind. An advertising template is never sent as transactional.")
@click.option("--at", "at", help="Reserved sending time, ISO 8601 (2026-12-24T09:00+09:00; "
                                 "without an offset it is in [ums] timezone); default now.")
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="Template field (repeatable).")
@pass_obj
def send(obj, to, template, channel, kind, at, variables):
    """Queue one message; exits 0 once it is durably queued (PASS sends it)."""
    fields = parse_fields(variables)
    if not is_valid(channel, to):
        raise BadSendRequest(reason=f"{to!r} is not a valid {channel} address")
    tz = site_zone(obj.config)
    now = utcnow()
    due_at = due_time(at, now, tz)

    async def work(conn):
        row = await templates.get(conn, template, channel)
        if not row:
            raise BadSendRequest(reason=f"no {channel} template named {template!r}")
        contact = await contacts.by_email(conn, to) if channel == "email" else None
        request = SendRequest(channel=channel, recipient=to.strip(), template=template,
                              kind=kind_for(row, kind), variables=fields,
                              contact_id=contact["id"] if contact else None,
                              due_at=due_at, service_name="cli")
        return await enqueue(conn, request, now), request.kind

    delivery_id, sent_as = run_async(_in_transaction(obj, work))
    click.echo(f"delivery {delivery_id} queued ({sent_as})" + (f" for {shown(due_at, tz)}" if due_at else ""))


COMMANDS = [send]
