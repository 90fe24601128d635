"""``ums user``: the users of the web front end from the command line — the
way back in when the admin password is lost (`ums user passwd admin`).

The same rules as WAS's user page (:mod:`ums.store.users`) and the same
password hashing (:func:`ums.security.hash_password`). A password is read from
the terminal (asked twice, not echoed) or, with --password-stdin, as the first
line of stdin — never from an argument, where other users and the shell
history would see it.
"""

from __future__ import annotations

import sys

import click

from ..errors import UmsError
from ..security import hash_password
from ..store import users
from .common import in_transaction as _in_transaction
from .common import json_option, local_time, pass_obj, pick, run_async, write_json

ROLE = click.Choice(users.ROLES)
PASSWORD_STDIN = click.option("--password-stdin", is_flag=True,
                              help="Read the password from the first line of stdin instead of asking.")


class NoTerminal(UmsError):
    """No terminal to ask for the password on; pass it with --password-stdin."""


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise NoTerminal()
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt="Repeat it")
    return users.check_password(password)


@click.group()
def user():
    """Users of the web front end and their roles: add, list, passwd, role, remove."""


@user.command()
@click.argument("name")
@click.option("--role", type=ROLE, required=True, help="What the user may do in WAS.")
@click.option("--display-name", help="The name WAS shows (default: none).")
@click.option("--email", help="The user's email address (default: none).")
@PASSWORD_STDIN
@pass_obj
def add(obj, name, role, display_name, email, password_stdin):
    """Add user NAME with a role and a password (asked for, or from stdin)."""
    users.check_name(name)
    password_hash = hash_password(_new_password(password_stdin))

    async def work(conn):
        if await users.get_by_name(conn, name):
            raise users.UserExists(name=name)
        await users.create(conn, name, password_hash, role, display_name=display_name, email=email)

    run_async(_in_transaction(obj, work))
    click.echo(f"added user {name} ({role})")


USER_FIELDS = ("username", "role", "display_name", "email", "disabled", "created_at")


@user.command(name="list")
@json_option(USER_FIELDS)
@pass_obj
def list_users(obj, as_json):
    """List the users: name, role, display name, email, state, created."""
    from rich.console import Console
    from rich.table import Table

    from ..store import web

    people = run_async(_in_transaction(obj, web.all_users))
    if as_json:
        write_json(obj, [pick(person, USER_FIELDS) for person in people])
        return
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "ROLE", "DISPLAY NAME", "EMAIL", "STATE", "CREATED"):
        table.add_column(column)
    for person in people:
        table.add_row(person["username"], person["role"], person["display_name"] or "-",
                      person["email"] or "-", "disabled" if person["disabled"] else "active",
                      local_time(obj, person["created_at"]))
    Console(width=160).print(table)


@user.command()
@click.argument("name")
@PASSWORD_STDIN
@pass_obj
def passwd(obj, name, password_stdin):
    """Set a new password for NAME (also an admin's lost one).

    The user's open web sessions end and their failed logins are forgotten.
    """
    run_async(_in_transaction(obj, lambda conn: users.existing(conn, name)))  # before asking for a password
    password_hash = hash_password(_new_password(password_stdin))
    run_async(_in_transaction(obj, lambda conn: users.set_password(conn, name, password_hash)))
    click.echo(f"password of {name} changed; their web sessions have ended")


@user.command()
@click.argument("name")
@click.argument("role", type=ROLE)
@pass_obj
def role(obj, name, role):
    """Give NAME the ROLE (the last admin stays admin)."""
    changed = run_async(_in_transaction(obj, lambda conn: users.set_role(conn, name, role)))
    click.echo(f"{name} is {'now' if changed else 'already'} {role}")


@user.command()
@click.argument("name")
@click.option("--with-books", is_flag=True, help="Also delete the address books NAME owns.")
@pass_obj
def remove(obj, name, with_books):
    """Remove user NAME (never the last admin; not while they own address books,
    unless --with-books)."""
    run_async(_in_transaction(obj, lambda conn: users.remove(conn, name, with_books)))
    click.echo(f"removed user {name}")


COMMANDS = [user]
