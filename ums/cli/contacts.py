"""``ums contacts import|export``: CSV and vCard (3.0/4.0) in and out."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .. import contacts_io
from ..errors import UmsError
from ..store import addressbooks, utcnow
from .common import pass_obj, ready_database, run_async


@click.group()
def contacts():
    """Import and export contacts (CSV, vCard 3.0 and 4.0)."""


@contacts.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--book", help="Also add every imported contact to this (shared) address book.")
@pass_obj
def import_(obj, file, book):
    """Import FILE (CSV or vCard, told apart by content); refused rows are listed by line."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise UmsError(f"Cannot read {file}: {exc.strerror}.") from None

    async def work():
        db = await ready_database(obj)
        try:
            async with db.begin() as conn:
                book_id = await addressbooks.ensure_book(conn, book) if book else None
                return await contacts_io.import_file(conn, data, utcnow(), book_id)
        finally:
            await db.close()

    report = run_async(work())
    console = Console()
    console.print(f"{report.created} added, {report.updated} updated, {len(report.refused)} refused")
    if report.refused:
        table = Table("line", "refused because")
        for line, reason in report.refused:
            table.add_row(str(line), reason)
        console.print(table)
        sys.exit(2)


@contacts.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "vcard"]), default="csv", show_default=True)
@click.option("--vcard-version", type=click.Choice(["3.0", "4.0"]), default="4.0", show_default=True)
@click.option("--book", help="Only the contacts of this address book.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout).")
@pass_obj
def export(obj, fmt, vcard_version, book, output):
    """Write every contact (or one book's) as CSV or vCard."""

    async def work():
        db = await ready_database(obj)
        try:
            async with db.begin() as conn:
                book_id = await addressbooks.ensure_book(conn, book) if book else None
                return await contacts_io.export(conn, fmt, book_id, version=vcard_version)
        finally:
            await db.close()

    text = run_async(work())
    if output:
        output.write_text(text, encoding="utf-8", newline="")
    else:
        click.echo(text, nl=False)


COMMANDS = [contacts]
