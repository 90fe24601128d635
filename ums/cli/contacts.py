"""``ums contacts import|export|share``: CSV and vCard (3.0/4.0) in and out,
and whom a shared or organisation book is shared with.

The CLI is the administrator's tool: it sees every book and contact
(:data:`ums.store.addressbooks.ADMINISTRATOR`); a book it names is one made
without an owner (an organisation book when it is made here)."""

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
@click.option("--book", help="Also add every imported contact to this address book (an organisation book when new).")
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
                return await contacts_io.import_file(conn, addressbooks.ADMINISTRATOR, data, utcnow(), book_id)
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
                book_id = await known_book(conn, book) if book else None
                return await contacts_io.export(conn, addressbooks.ADMINISTRATOR, fmt, book_id, version=vcard_version)
        finally:
            await db.close()

    text = run_async(work())
    if output:
        output.write_text(text, encoding="utf-8", newline="")
    else:
        click.echo(text, nl=False)


class UnknownBook(UmsError):
    """No address book named {name!r} (the CLI names the books made without an owner: organisation and back-office books)."""


async def known_book(conn, name: str) -> int:
    found = await addressbooks.find_book(conn, name)
    if found is None:
        raise UnknownBook(name=name)
    return found


@contacts.command("share")
@click.argument("book")
@click.option("--role", "roles", multiple=True, type=click.Choice(addressbooks.SHARE_ROLES),
              help="Share with everyone of this role (api: API keys with the contacts scope); repeatable.")
@click.option("--user", "usernames", multiple=True, metavar="USERNAME", help="Share with this user; repeatable.")
@click.option("--scope", type=click.Choice(["shared", "organisation"]),
              help="Also make the book shared or organisation (created as an organisation book when missing).")
@pass_obj
def share(obj, book, roles, usernames, scope):
    """Share BOOK (an address book made without an owner) with exactly the
    given roles and users; with neither, it is shared with nobody."""
    from ..store import users

    async def work():
        db = await ready_database(obj)
        try:
            async with db.begin() as conn:
                user_ids = []
                for name in usernames:
                    found = await users.get_by_name(conn, name)
                    if found is None:
                        raise UmsError(f"No user named {name!r}.")
                    user_ids.append(found["id"])
                book_id = await addressbooks.ensure_book(conn, book, scope or "organisation")
                if scope:
                    await addressbooks.set_scope(conn, book_id, scope)
                await addressbooks.share(conn, book_id, list(roles), user_ids)
                return await addressbooks.book(conn, addressbooks.ADMINISTRATOR, book_id)
        finally:
            await db.close()

    found = run_async(work())
    whom = found["shared_with"]["roles"] + [user["username"] for user in found["shared_with"]["users"]]
    click.echo(f"{found['name']} ({found['scope']}): shared with {', '.join(whom) if whom else 'nobody'}")


COMMANDS = [contacts]
