"""`ums suppress add|remove|list`: the suppression list."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..addresses import is_valid
from ..errors import UmsError
from ..store import bounces, suppression
from .common import in_transaction as _in_transaction
from .common import json_option, local_time, pass_obj, pick, run_async, write_json

#: what ``suppress list --json`` prints of each entry
ENTRY_FIELDS = ("channel", "address", "reason", "scope", "source", "detail", "evidence", "created_at",
                "temporary_bounces")
CHANNEL = click.option("--channel", default="email", show_default=True, type=click.Choice(["email", "fax", "voice"]))


@click.group()
def suppress():
    """Addresses UMS must never send to (refusals, bounces, operator entries).

    An entry's scope is "all" (nothing is sent to the address) or "advertising"
    (a refusal of advertising: transactional notices such as account alerts still go)."""


@suppress.command()
@click.argument("address")
@CHANNEL
@click.option("--reason", default="manual", show_default=True,
              type=click.Choice(["manual", "refusal", "unsubscribe", "bounce", "complaint"]))
@click.option("--detail", help="A note kept with the entry.")
@click.option("--scope", default=suppression.ALL, show_default=True, type=click.Choice(suppression.SCOPES),
              help="What the entry stops: every send, or advertising only (transactional notices still go).")
@pass_obj
def add(obj, address, channel, reason, detail, scope):
    """Suppress ADDRESS; PASS stops sending to it at once (even mid-campaign)."""
    if not is_valid(channel, address):
        raise UmsError(f"{address!r} is not a valid {channel} address")
    added = run_async(_in_transaction(
        obj, lambda conn: suppression.add(conn, channel, address, reason, source="cli", detail=detail,
                                          scope=scope)))
    what = "advertising only" if scope == suppression.ADVERTISING else "all sends"
    click.echo(f"{address} suppressed ({what})" if added else f"{address} was already suppressed")


@suppress.command()
@click.argument("address")
@CHANNEL
@pass_obj
def remove(obj, address, channel):
    """Take ADDRESS off the suppression list; its temporary-bounce count starts afresh."""
    if not run_async(_in_transaction(obj, lambda conn: suppression.remove(conn, channel, address))):
        raise UmsError(f"{address} is not suppressed")
    click.echo(f"{address} removed from the suppression list")


@suppress.command(name="list")
@click.option("--channel", type=click.Choice(["email", "fax", "voice"]))
@click.option("--limit", default=100, show_default=True)
@json_option(ENTRY_FIELDS)
@pass_obj
def list_(obj, channel, limit, as_json):
    """The newest entries: what each stops (scope), on which channel, where it came
    from (source), why it can be trusted (evidence), and each address's
    temporary-bounce count."""
    async def listing(conn):
        rows = await suppression.entries(conn, channel, limit)
        scores = {}
        for name in {row["channel"] for row in rows}:
            found = await bounces.scores_of(conn, name, [r["address"] for r in rows if r["channel"] == name])
            scores.update({(name, address): score for address, score in found.items()})
        return rows, scores

    rows, scores = run_async(_in_transaction(obj, listing))
    if as_json:
        write_json(obj, [pick({**row, "temporary_bounces": scores.get((row["channel"], row["address"]), 0)},
                              ENTRY_FIELDS) for row in rows])
        return
    table = Table(box=None, header_style="bold")
    for column in ("channel", "address", "reason", "scope", "source", "evidence", "since", "temporary bounces"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["channel"], row["address"], row["reason"], row["scope"], row["source"] or "",
                      Text(row["evidence"] or ""), local_time(obj, row["created_at"]),
                      str(scores.get((row["channel"], row["address"]), 0)))
    Console(width=200).print(table)


COMMANDS = [suppress]
