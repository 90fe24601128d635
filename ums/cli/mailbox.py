"""``ums mailbox``: which web user reads which mailbox, and a search of the mailboxes.

A mailbox is an address MAS files mail under (``user+tag@`` files into
``user@``); it has one owner, and a user may own several. ``assign`` makes the
mailbox if no mail has come for it yet, and refuses an address MAS would never
receive mail for (not at one of ``[mas] local_domains``). An owner reads the
mailbox in WAS's inbox and through a ``mailbox`` API key made for them
(``ums apikey create --scope mailbox --user NAME``); admins read every mailbox.
The same rules as the Users page of WAS (:mod:`ums.store.mailbox`). ``search``
reads every mailbox, or with ``--user`` only what that user may read; its
ranking and matching are the inbox search's (:mod:`ums.store.web`).
"""

from __future__ import annotations

import re

import click

from .. import mailindex
from ..store import mailbox as mailbox_store
from ..store import users, utcnow, web
from .common import in_transaction, json_option, local_time, pass_obj, pick, run_async, write_json

MAILBOX_FIELDS = ("address", "owner", "messages", "created_at")
MESSAGE_FIELDS = ("id", "mailbox", "folder", "media", "sender", "recipient", "subject", "received_at")
SEARCH_FIELDS = (*MESSAGE_FIELDS, "pages", "snippet", "snippet_html")


@click.group()
def mailbox():
    """Mailboxes: assign them to users, list them, search them."""


@mailbox.command()
@click.argument("address")
@click.argument("user")
@pass_obj
def assign(obj, address, user):
    """Give mailbox ADDRESS to USER (a web user), who then reads its mail in WAS."""
    address = mailbox_store.assignable_address(address, obj.config.get("mas", "local_domains") or [])

    async def work(conn):
        owner = await users.existing(conn, user)
        await mailbox_store.assign(conn, address, owner["id"], utcnow())

    run_async(in_transaction(obj, work))
    click.echo(f"{address} now belongs to {user}")


@mailbox.command()
@click.argument("address")
@pass_obj
def unassign(obj, address):
    """Take mailbox ADDRESS from its owner (its mail stays; admins still read it)."""
    run_async(in_transaction(obj, lambda conn: mailbox_store.unassign(conn, address)))
    click.echo(f"{address.strip().lower()} belongs to nobody now")


@mailbox.command(name="list")
@json_option(MAILBOX_FIELDS)
@pass_obj
def list_mailboxes(obj, as_json):
    """List the mailboxes: address, owner, how many messages, created."""
    boxes = run_async(in_transaction(obj, mailbox_store.with_owners))
    if as_json:
        write_json(obj, [pick(box, MAILBOX_FIELDS) for box in boxes])
        return
    _table(("ADDRESS", "OWNER", "MESSAGES", "CREATED"),
           [(box["address"], box["owner"] or "-", f"{box['messages']:,}", local_time(obj, box["created_at"]))
            for box in boxes])


@mailbox.command()
@click.argument("query")
@click.option("--mailbox", "address", help="Search only this mailbox.")
@click.option("--user", "username", help="Search only what this web user may read (the mailboxes they own).")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="At most this many.")
@json_option(SEARCH_FIELDS)
@pass_obj
def search(obj, query, address, username, limit, as_json):
    """Messages whose sender, subject, body, fax pages or PDF text hold every word of
    QUERY (Korean too, inside words), best matches first, each with the text around
    its first match (matches in [brackets]; in --json, snippet_html marks them)."""
    if not mailindex.search_words(query):
        raise click.UsageError("QUERY has no words to search for")
    wanted = web.InboxQuery(search=query, mailbox=address, limit=limit, sort=web.RELEVANCE)

    async def work(conn):
        viewer = (await users.existing(conn, username))["id"] if username else None
        return await web.inbox_page(conn, viewer, wanted)

    rows, total = run_async(in_transaction(obj, work))
    if as_json:
        write_json(obj, [pick(row, SEARCH_FIELDS) for row in rows])
        return
    _table(("ID", "MAILBOX", "FROM", "SUBJECT", "RECEIVED", "MATCH"),
           [(str(row["id"]), row["mailbox"], row["sender"] or "-", row["subject"] or "-",
             local_time(obj, row["received_at"]), _marked(row["snippet"], query)) for row in rows])
    click.echo(f"{len(rows)} of {total:,} matching", err=True)


def _marked(snippet: str | None, query: str) -> str:
    """The snippet with each match in [brackets] (plain text for the terminal)."""
    from rich.markup import escape

    text = snippet or ""
    for word in mailindex.search_words(query):
        text = re.sub(re.escape(word), lambda found: f"\x00{found.group()}\x01", text, flags=re.IGNORECASE)
    return escape(text).replace("\x00", "[bold]\\[").replace("\x01", "][/bold]")


def _table(columns, rows) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


COMMANDS = [mailbox]
