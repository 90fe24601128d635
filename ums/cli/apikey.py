"""``ums apikey``: API keys of back-office systems for the EPS HTTP API."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from ..errors import UmsError
from ..store import apikeys, users, utcnow
from .common import json_option, local_time, pass_obj, pick, run_async, write_json
from .service import _with_db


#: what ``apikey list --json`` prints of each key (never the key or its hash)
KEY_FIELDS = ("id", "system", "prefix", "scopes", "created_at", "revoked_at", "last_used_at")


class NoSuchKey(UmsError):
    """No active API key with id {key_id}."""


@click.group()
def apikey():
    """Create, list and revoke API keys (one or more per back-office system)."""


@apikey.command()
@click.option("--system", required=True, help="The back-office system that will use the key, e.g. account.")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(apikeys.SCOPES),
              help="What the key may do (repeatable); default: " + ", ".join(apikeys.BACK_OFFICE_SCOPES) + ".")
@click.option("--user", "username", help="The web user whose mailboxes the key reads (with the mailbox scope).")
@pass_obj
def create(obj, system, scopes, username):
    """Create a key for SYSTEM and print it once (only its hash is stored).

    The key sees and manages only SYSTEM's events and services; it reaches the
    WAS API only with the send, contacts, campaigns or mailbox scope. With the
    mailbox scope it reads the mailboxes of --user, and none without it."""
    async def work(conn):
        owner = await users.existing(conn, username) if username else None
        return await apikeys.create(conn, system, utcnow(), scopes, user_id=owner["id"] if owner else None)

    key_id, key = run_async(_with_db(obj, work, write=True))
    click.echo(key)
    chosen = ", ".join(apikeys.checked_scopes(scopes))
    click.echo(f"key {key_id} for system {system} ({chosen}); store it now, it cannot be shown again", err=True)


@apikey.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also list revoked keys.")
@json_option(KEY_FIELDS)
@pass_obj
def list_(obj, show_all, as_json):
    """List keys (id, system, the first characters, dates)."""
    rows = run_async(_with_db(obj, lambda conn: apikeys.list_keys(conn, show_all)))
    if as_json:
        write_json(obj, [{**pick(row, KEY_FIELDS), "scopes": list(row["scopes"] or apikeys.BACK_OFFICE_SCOPES)}
                         for row in rows])
        return
    table = Table("id", "system", "prefix", "scopes", "created", "revoked")
    for row in rows:
        scopes = " ".join(row["scopes"] or apikeys.BACK_OFFICE_SCOPES)
        table.add_row(str(row["id"]), row["system"], row["prefix"] + "…", scopes, local_time(obj, row["created_at"]),
                      local_time(obj, row["revoked_at"]))
    Console().print(table)


@apikey.command()
@click.argument("key_id", type=int)
@pass_obj
def revoke(obj, key_id):
    """Revoke key KEY_ID (running servers refuse it within seconds)."""
    if not run_async(_with_db(obj, lambda conn: apikeys.revoke(conn, key_id, utcnow()), write=True)):
        raise NoSuchKey(key_id=key_id)
    click.echo(f"revoked key {key_id}")


COMMANDS = [apikey]
