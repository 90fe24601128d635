"""`ums template add|list|show`: message templates per channel."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..errors import UmsError
from ..store import templates, utcnow
from ..templates import EmailSkeleton
from .common import in_transaction as _in_transaction
from .common import json_option, pass_obj, pick, run_async, write_json

FIELDS = ("subject", "body_html", "body_text", "sender_name", "sender_contact", "kind")
#: what ``template list --json`` prints of each template
LIST_FIELDS = ("name", "channel", "kind", "version", "subject", "sender_name", "sender_contact", "created_at",
               "updated_at")


@click.group()
def template():
    """Message templates (Jinja2: subject, HTML and text parts, per-recipient fields)."""


@template.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@pass_obj
def add(obj, file):
    """Create or update a template from a JSON FILE: {"name", "channel", "kind", "subject",
    "body_html", "body_text", "sender_name", "sender_contact"}."""
    try:
        data = json.loads(Path(file).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise UmsError(f"cannot read template {file}: {exc}") from None
    if not isinstance(data, dict) or not data.get("name"):
        raise UmsError(f"template {file} needs a JSON object with a name")
    channel = data.get("channel", "email")
    EmailSkeleton(data, data.get("kind", "transactional"), "", "check@example.com")  # syntax check
    fields = {key: data[key] for key in FIELDS if key in data}
    run_async(_in_transaction(obj, lambda conn: templates.save(conn, data["name"], channel, utcnow(), **fields)))
    click.echo(f"template {data['name']!r} ({channel}) saved")


@template.command(name="list")
@json_option(LIST_FIELDS)
@pass_obj
def list_(obj, as_json):
    """All templates."""
    rows = run_async(_in_transaction(obj, templates.list_all))
    if as_json:
        write_json(obj, [pick(row, LIST_FIELDS) for row in rows])
        return
    table = Table(box=None, header_style="bold")
    for column in ("name", "channel", "kind", "version", "subject"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["channel"], row["kind"], str(row["version"]), row["subject"] or "")
    Console(width=140).print(table)


COMMANDS = [template]
