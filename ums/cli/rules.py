"""`ums rules test|list|set|remove`: MAS's Sieve rules (RFC 5228)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..errors import UmsError
from ..store import mailbox as mailboxes
from ..store import rules as rule_store
from ..store import utcnow
from .common import in_transaction as _in_transaction
from .common import json_option, local_time, pass_obj, run_async, write_json


#: what ``rules list --json`` prints of each script
RULE_FIELDS = ("scope", "mailbox", "name", "lines", "active", "updated_at", "script")


class UnknownMailbox(UmsError):
    """No mailbox {address}; it is created when its first message arrives."""


def read_text(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UmsError(f"cannot read {what} {path}: {exc.strerror}") from None


async def mailbox_id_of(conn, address: str | None) -> int | None:
    if not address:
        return None
    box = await mailboxes.by_address(conn, address)
    if box is None:
        raise UnknownMailbox(address=address)
    return box["id"]


@click.group()
def rules():
    """Sieve rules that file, flag, forward, reject or notify on inbound mail."""


@rules.command()
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("message", type=click.Path(dir_okay=False))
@click.option("--recipient", default="", help="Envelope recipient (default: the message's To).")
@click.option("--sender", default="", help="Envelope sender (default: the message's From).")
def test(script, message, recipient, sender):
    """Print the actions SCRIPT would take on MESSAGE (an .eml file); nothing is stored."""
    from ums.inbound import InboundMessage
    from ums.sieve import compile_script, evaluate

    compiled = compile_script(read_text(script, "script").decode("utf-8"), name=Path(script).name)
    inbound = InboundMessage(read_text(message, "message"))
    inbound.envelope_from = sender or inbound.sender
    target = recipient or next(iter(inbound.addresses("to")), "")
    verdict = evaluate([compiled], inbound, target)
    for line in verdict.describe() or ["(no action)"]:
        click.echo(line)


@rules.command(name="list")
@json_option(RULE_FIELDS)
@pass_obj
def list_(obj, as_json):
    """Every stored script: site-wide first, then per mailbox."""
    rows = run_async(_in_transaction(obj, rule_store.list_all))
    if as_json:
        write_json(obj, [{"scope": row["scope"], "mailbox": row["address"], "name": row["name"],
                          "lines": row["script"].count("\n") + 1, "active": bool(row["active"]),
                          "updated_at": row["updated_at"], "script": row["script"]} for row in rows])
        return
    table = Table(box=None, header_style="bold")
    for column in ("scope", "mailbox", "name", "lines", "active", "updated"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["scope"], row["address"] or "-", row["name"], str(row["script"].count("\n") + 1),
                      "yes" if row["active"] else "no", local_time(obj, row["updated_at"]))
    Console().print(table)


@rules.command(name="set")
@click.argument("name")
@click.argument("script", type=click.Path(dir_okay=False))
@click.option("--mailbox", "address", help="The mailbox the script belongs to (default: site-wide).")
@pass_obj
def set_(obj, name, script, address):
    """Store SCRIPT as rule NAME; a script with an error is refused with its line and column."""
    from ums.sieve import check

    text = read_text(script, "script").decode("utf-8")
    check(text)

    async def save(conn):
        return await rule_store.save(conn, name, text, utcnow(), mailbox_id=await mailbox_id_of(conn, address))

    run_async(_in_transaction(obj, save))
    click.echo(f"rule {name} saved for {address or 'the whole site'} (MAS applies it within seconds)")


@rules.command()
@click.argument("name")
@click.option("--mailbox", "address", help="The mailbox the script belongs to (default: site-wide).")
@pass_obj
def remove(obj, name, address):
    """Delete rule NAME."""
    async def delete(conn):
        return await rule_store.remove(conn, name, mailbox_id=await mailbox_id_of(conn, address))

    if not run_async(_in_transaction(obj, delete)):
        raise UmsError(f"no rule {name} for {address or 'the whole site'}")
    click.echo(f"rule {name} removed")


COMMANDS = [rules]
